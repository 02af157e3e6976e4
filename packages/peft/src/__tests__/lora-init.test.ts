import { type LinearLike, fromPretrained, openSource } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, manualSeed, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoraConfig, LoraLinear, getPeftModel, loadPeftModel, loraConfigToJson, memoryFiles, resolveLoraConfig, svd } from '../index.js';
import golden from './fixtures/lora_init_golden.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';
import { CodeLinear } from './fake-quant.js';
import { Container } from './toy-models.js';

checkLeaksPerTest();

// Reference values: tools/golden/lora_init_golden.py, PEFT 0.21's own pissa_init and
// loftq_init (the latter with bitsandbytes' NF4 rules restated, on the cpu).
const TOL = { rtol: 1e-5, atol: 1e-5 };

interface ModuleRec {
  shape: number[];
  base: string;
  delta: string;
  exactTopS?: number[];
  peftDeltaS?: number[];
}
interface InitCase {
  modules: Record<string, ModuleRec>;
  logits: string;
}

beforeAll(async () => {
  await initBackends();
});

const f32 = (b64: string) => new Float32Array(base64Bytes(b64).buffer);

async function take(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

async function loaded(backend: BackendName) {
  const files = golden.checkpoint;
  const model = own((await fromPretrained(openSource({ 'config.json': files['config.json'], 'model.safetensors': base64Bytes(files['model.safetensors']) }), { backend })).model);
  const ids = own(tensor(Int32Array.from(golden.inputIds.flat()), [golden.inputIds.length, golden.inputIds[0].length], { dtype: 'i32', backend }));
  return { model, ids };
}

function config(extra: Partial<LoraConfig>): LoraConfig {
  return { peftType: 'LORA', r: 4, loraAlpha: extra.initLoraWeights === 'loftq' ? 4 : 8, targetModules: golden.targets, ...extra };
}

/** Singular values of a row-major [m, n] matrix, descending. */
function singularValues(a: ArrayLike<number>, m: number, n: number): Float64Array {
  return svd(a, m, n).S;
}

describe("PiSSA and LoftQ initialisation equal PEFT 0.21's", () => {
  it("'olora': the residual base weight, scaling * B A (from QR) and the logits", async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = await loaded(backend);
      const peft = getPeftModel(model, config({ initLoraWeights: 'olora' }));
      expect(() => peft.forward({ inputIds: ids })).toThrow(/initLoraWeights 'olora'.*await initLoraFromBase\(peft\)/);
      const done = await peft.initLoraFromBase();
      expect(done.sort()).toEqual(Object.keys(golden.olora.modules).sort());
      for (const [path, want] of Object.entries((golden.olora as InitCase).modules)) {
        const layer = model.getSubmodule(path) as LoraLinear;
        expectClose(await take(noGrad(() => layer.base.dequantizedWeight())), f32(want.base), { ...TOL, label: `${backend} ${path} residual` });
        expectClose(await take(layer.deltaWeight('default')), f32(want.delta), { ...TOL, label: `${backend} ${path} delta` });
      }
      expectClose(await take(noGrad(() => peft.forward({ inputIds: ids })).logits), f32(golden.olora.logits), { rtol: 1e-4, atol: 1e-4, label: `${backend} olora logits` });
    }
  });

  it("'pissa': the residual base weight, scaling * B A and the logits; forward refuses before the init", async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = await loaded(backend);
      const peft = getPeftModel(model, config({ initLoraWeights: 'pissa' }));
      expect(() => peft.forward({ inputIds: ids })).toThrow(/initLoraWeights 'pissa'.*await initLoraFromBase\(peft\)/);
      const done = await peft.initLoraFromBase();
      expect(done.sort()).toEqual(Object.keys(golden.pissa.modules).sort());
      for (const [path, want] of Object.entries((golden.pissa as InitCase).modules)) {
        const layer = model.getSubmodule(path) as LoraLinear;
        expectClose(await take(noGrad(() => layer.base.dequantizedWeight())), f32(want.base), { ...TOL, label: `${backend} ${path} residual` });
        expectClose(await take(layer.deltaWeight('default')), f32(want.delta), { ...TOL, label: `${backend} ${path} delta` });
      }
      expectClose(await take(noGrad(() => peft.forward({ inputIds: ids })).logits), f32(golden.pissa.logits), { rtol: 1e-4, atol: 1e-4, label: `${backend} pissa logits` });
      // Nothing is pending any more: a second call initialises nothing.
      expect(await peft.initLoraFromBase()).toEqual([]);
    }
  });

  it("'pissa_niter_4': residual + scaling * B A is W, and the kept singular values capture the exact top r as torch's do", async () => {
    const { model } = await loaded('cpu');
    const originals = new Map<string, Float32Array>();
    for (const path of Object.keys(golden.pissaNiter4.modules)) originals.set(path, await take(noGrad(() => (model.getSubmodule(path) as unknown as LinearLike).dequantizedWeight())));
    manualSeed(12);
    const peft = getPeftModel(model, config({ initLoraWeights: 'pissa_niter_4' }));
    await peft.initLoraFromBase();
    for (const [path, want] of Object.entries((golden.pissaNiter4 as InitCase).modules)) {
      const layer = model.getSubmodule(path) as LoraLinear;
      const [rows, cols] = want.shape;
      const residual = await take(noGrad(() => layer.base.dequantizedWeight()));
      const delta = await take(layer.deltaWeight('default'));
      expectClose(residual.map((v, i) => v + delta[i]), originals.get(path) as Float32Array, { ...TOL, label: `${path} W` });
      const ours = singularValues(delta, rows, cols);
      const exact = want.exactTopS as number[];
      const theirs = want.peftDeltaS as number[];
      // A rank-r projection never raises a singular value. How much of the top r it keeps depends
      // on the random test matrix (torch's draw and ours differ; these weights have a nearly flat
      // spectrum, sigma_3 / sigma_4 ~ 1.003, so sigma_3 alone varies by up to 10% between draws):
      // hold the captured sum to 92% of the exact one, for ours and for torch's.
      const total = (v: ArrayLike<number>) => Array.from(v).slice(0, 4).reduce((a, b) => a + b, 0);
      for (let i = 0; i < 4; i++) expect(ours[i], `${path} sigma_${i}`).toBeLessThanOrEqual(exact[i] * (1 + 1e-6));
      expect(total(ours) / total(exact), `${path} ours`).toBeGreaterThanOrEqual(0.92);
      expect(total(theirs) / total(exact), `${path} torch's`).toBeGreaterThanOrEqual(0.92);
    }
  });

  for (const key of ['loftq1', 'loftq3'] as const) {
    const iters = key === 'loftq1' ? 1 : 3;
    it(`'loftq' (4 bits, ${iters} step${iters > 1 ? 's' : ''}): the NF4 base and B A equal PEFT's`, async () => {
      for (const backend of backendsUnderTest()) {
        const { model } = await loaded(backend);
        const peft = getPeftModel(model, config({ initLoraWeights: 'loftq', loftqConfig: { loftqBits: 4, loftqIter: iters } }));
        await peft.initLoraFromBase();
        for (const [path, want] of Object.entries((golden[key] as InitCase).modules)) {
          const layer = model.getSubmodule(path) as LoraLinear;
          const base = await take(noGrad(() => layer.base.dequantizedWeight()));
          const wantBase = f32(want.base);
          if (iters === 1) expect(Array.from(base), `${backend} ${path} NF4 base`).toEqual(Array.from(wantBase));
          else {
            // After the first step the quantized input is W - L R, whose float32 rounding differs
            // between torch's float32 SVD and ours (float64): a value at a code boundary may flip.
            const flipped = base.filter((v, i) => Math.abs(v - wantBase[i]) > 1e-6).length;
            expect(flipped / base.length, `${backend} ${path} NF4 codes that differ`).toBeLessThanOrEqual(0.01);
          }
          expectClose(await take(layer.deltaWeight('default')), f32(want.delta), { rtol: 1e-4, atol: iters === 1 ? 1e-5 : 2e-3, label: `${backend} ${path} delta` });
        }
      }
    });
  }

  for (const init of ['pissa', 'loftq'] as const) {
    it(`a saved '${init}' adapter loads onto the original base: the residual base is rebuilt, A and B are the file's`, async () => {
      const { model, ids } = await loaded('cpu');
      const peft = getPeftModel(model, config(init === 'loftq' ? { initLoraWeights: 'loftq', loftqConfig: { loftqBits: 4, loftqIter: 2 } } : { initLoraWeights: 'pissa' }));
      await peft.initLoraFromBase();
      // As after training: A and B move away from their init.
      for (const [, layer] of peft.base_model.tunerLayers()) for (const t of layer.adapterParameters('default')) noGrad(() => assign(t, own(tensor(Float32Array.from(randomArray(t.size, t.size, -0.3, 0.3)), t.shape, { backend: 'cpu' }))));
      const want = await take(noGrad(() => peft.forward({ inputIds: ids })).logits);
      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      expect(JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json')))).toMatchObject({ init_lora_weights: init });
      const fresh = await loaded('cpu');
      const reloaded = await loadPeftModel(fresh.model, dir);
      expectClose(await take(noGrad(() => reloaded.forward({ inputIds: fresh.ids })).logits), want, { rtol: 1e-5, atol: 1e-5, label: `${init} reloaded logits` });
    });
  }

  it('validates the config and saves loftq_config as PEFT does; refuses quantized bases and embeddings', async () => {
    expect(() => resolveLoraConfig(config({ initLoraWeights: 'loftq' }))).toThrow(/loftqConfig .* is required when initLoraWeights is 'loftq'/);
    expect(() => resolveLoraConfig(config({ initLoraWeights: 'pissa', loftqConfig: { loftqBits: 4 } }))).toThrow(/loftqConfig applies only to initLoraWeights 'loftq'/);
    expect(() => resolveLoraConfig(config({ initLoraWeights: 'loftq', loftqConfig: { loftqBits: 3 } }))).toThrow(/loftqBits must be 4 or 8/);
    expect(() => resolveLoraConfig(config({ initLoraWeights: 'loftq', loftqConfig: { loftqIter: 0 } }))).toThrow(/loftqIter must be a positive integer/);
    expect(() => resolveLoraConfig(config({ initLoraWeights: 'pissa_niter_0' }))).toThrow(/initLoraWeights must be/);
    expect(() => resolveLoraConfig(config({ initLoraWeights: 'corda' as 'pissa' }))).toThrow(/initLoraWeights must be/);
    const json = loraConfigToJson(resolveLoraConfig(config({ initLoraWeights: 'loftq', loftqConfig: { loftqBits: 4, loftqIter: 2 } })));
    expect(json).toMatchObject({ init_lora_weights: 'loftq', loftq_config: { loftq_bits: 4, loftq_iter: 2 } });
    expect(loraConfigToJson(resolveLoraConfig(config({ initLoraWeights: 'pissa' }))).loftq_config).toEqual({});

    const { model } = await loaded('cpu');
    expect(() => getPeftModel(model, config({ initLoraWeights: 'pissa', targetModules: ['q_proj', 'embed_tokens'] }))).toThrow(/initLoraWeights 'pissa' on embedding layers is not supported/);
    const peft = getPeftModel(model, config({ initLoraWeights: 'loftq', loftqConfig: { loftqBits: 8 } }));
    await expect(peft.initLoraFromBase()).rejects.toThrow(/loftqBits 8 needs options.quantize/);
    await expect(peft.initLoraFromBase({ adapterName: 'nope' })).rejects.toThrow(/adapter 'nope' does not exist/);
    peft.addAdapter('plain', config({}));
    await expect(peft.addWeightedAdapter(['default', 'plain'], [1, 1], 'mix', { combinationType: 'cat' })).rejects.toThrow(/adapter default waits for its 'loftq' init/);
    expect([...peft.peftConfig.keys()]).toEqual(['default', 'plain']);

    // A quantized base (an integer-code LinearLike) has lost the full-precision weight PiSSA needs.
    const quantized = own(new Container({ layers: new Container({ q_proj: new CodeLinear(6, 5, randomArray(30, 4, -1, 1) as Float32Array, 1 / 127, 'cpu') }) }));
    const qpeft = getPeftModel(quantized, { peftType: 'LORA', r: 2, targetModules: ['q_proj'], initLoraWeights: 'pissa' });
    await expect(qpeft.initLoraFromBase()).rejects.toThrow(/'pissa' at 'layers.q_proj' needs a full-precision base \(Linear or Conv1D\), got CodeLinear/);
  });
});
