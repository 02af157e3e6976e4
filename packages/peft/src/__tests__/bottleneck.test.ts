import { causalLMFromConfig, generate, parseSafetensors } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, getBackendName, manualSeed, mul, noGrad, setBackend, sum, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray, randomInts, sgdStep } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type BottleneckConfig,
  BottleneckLayer,
  type BottleneckSlot,
  type PeftModel,
  type ResolvedBottleneckConfig,
  bottleneckConfigFromJson,
  bottleneckConfigToJson,
  getPeftModel,
  loadPeftModel,
  memoryFiles,
  registerPeftMethod,
  resolveBottleneckConfig,
} from '../index.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

const TINY = {
  gpt2: { model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 32, n_positions: 16, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 },
  llama: { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 32, max_position_embeddings: 16 },
};
const D = 16;

// ---------------------------------------------------------------------------------------
// float64 reference from the papers' equations (Houlsby et al. 2019 eq. in Fig. 2; He et al.
// 2021 parallel adapter), over rows of a [N, D] matrix.

type Rows = number[][];
interface RefParams {
  down: Rows; // [m, D]
  downBias: number[];
  up: Rows; // [D, m]
  upBias: number[];
  lnBefore?: { w: number[]; b: number[] };
  lnAfter?: { w: number[]; b: number[] };
}
interface RefOptions {
  act: string;
  scaling: number;
  parallel: boolean;
  residualBeforeLn: boolean;
}

function erf(x: number): number {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), enough against f32 results.
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

const ACT: Record<string, (z: number) => number> = {
  relu: (z) => Math.max(0, z),
  tanh: Math.tanh,
  swish: (z) => z / (1 + Math.exp(-z)),
  silu: (z) => z / (1 + Math.exp(-z)),
  gelu: (z) => 0.5 * z * (1 + erf(z / Math.SQRT2)),
  gelu_new: (z) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3))),
};

function layerNormRow(z: number[], w: number[], b: number[]): number[] {
  const mean = z.reduce((a, v) => a + v, 0) / z.length;
  const variance = z.reduce((a, v) => a + (v - mean) ** 2, 0) / z.length;
  return z.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * w[i] + b[i]);
}

function affine(z: number[], w: Rows, b: number[]): number[] {
  return w.map((row, o) => row.reduce((a, v, i) => a + v * z[i], b[o]));
}

/** `scaling * up(act(down(ln_before(z))))` for one row. */
function bottleneckRow(z: number[], p: RefParams, o: RefOptions): number[] {
  const input = p.lnBefore ? layerNormRow(z, p.lnBefore.w, p.lnBefore.b) : z;
  const h = affine(input, p.down, p.downBias).map(ACT[o.act]);
  return affine(h, p.up, p.upBias).map((v) => v * o.scaling);
}

/** The adapted sublayer output for rows `x` (sublayer input) and `y` (sublayer output). */
function reference(x: Rows, y: Rows, p: RefParams, o: RefOptions): Rows {
  const normAfter = (r: number[]) => (p.lnAfter ? layerNormRow(r, p.lnAfter.w, p.lnAfter.b) : r);
  return y.map((yr, n) => {
    if (o.parallel) return normAfter(bottleneckRow(x[n], p, o)).map((v, i) => yr[i] + v);
    const a = bottleneckRow(yr, p, o);
    if (o.residualBeforeLn) return normAfter(a.map((v, i) => v + yr[i]));
    return normAfter(a).map((v, i) => v + yr[i]);
  });
}

/** Central differences of `sum(reference * g)` with respect to every entry of `arr` (float64). */
function numericGrad(arr: number[], loss: () => number): number[] {
  const h = 1e-6;
  return arr.map((v, i) => {
    arr[i] = v + h;
    const up = loss();
    arr[i] = v - h;
    const down = loss();
    arr[i] = v;
    return (up - down) / (2 * h);
  });
}

function rows(flat: ArrayLike<number>, n: number, d: number): Rows {
  return Array.from({ length: n }, (_, r) => Array.from({ length: d }, (_, c) => flat[r * d + c]));
}

function setValues(t: Tensor, values: ArrayLike<number>): void {
  const src = tensor(Float32Array.from(values), t.shape, { backend: t.backend.name });
  noGrad(() => assign(t, src));
  src.dispose();
}

// ---------------------------------------------------------------------------------------

const CASES: [string, Partial<BottleneckConfig>, RefOptions][] = [
  ['Houlsby (swish, sequential)', { reductionFactor: 4 }, { act: 'swish', scaling: 1, parallel: false, residualBeforeLn: false }],
  [
    'Pfeiffer (relu) with ln_before and ln_after',
    { mhAdapter: false, nonLinearity: 'relu', bottleneckSize: 3, lnBefore: true, lnAfter: true },
    { act: 'relu', scaling: 1, parallel: false, residualBeforeLn: false },
  ],
  ['gelu, ln_after with the residual before it', { nonLinearity: 'gelu', bottleneckSize: 5, lnAfter: true, adapterResidualBeforeLn: true, scaling: 0.5 }, { act: 'gelu', scaling: 0.5, parallel: false, residualBeforeLn: true }],
  ['parallel (He et al., relu, scaling 4)', { isParallel: true, mhAdapter: false, nonLinearity: 'relu', reductionFactor: 4 }, { act: 'relu', scaling: 4, parallel: true, residualBeforeLn: false }],
  ['parallel tanh with ln_before', { isParallel: true, nonLinearity: 'tanh', bottleneckSize: 4, lnBefore: true, scaling: 2 }, { act: 'tanh', scaling: 2, parallel: true, residualBeforeLn: false }],
  ['gelu_new', { nonLinearity: 'gelu_new', bottleneckSize: 2 }, { act: 'gelu_new', scaling: 1, parallel: false, residualBeforeLn: false }],
];

describe('bottleneck adapter layer against a float64 reference', () => {
  for (const family of ['gpt2', 'llama'] as const) {
    for (const [name, config, opts] of CASES) {
      it(`${family}: ${name}: forward and the gradients of every adapter tensor`, async () => {
        for (const backend of backendsUnderTest()) {
          manualSeed(3);
          const model = own(causalLMFromConfig(TINY[family], { backend }));
          const peft = getPeftModel(model, { peftType: 'BOTTLENECK', ...config });
          const path = family === 'gpt2' ? 'transformer.h.1.mlp' : 'model.layers.1.mlp';
          const layer = model.getSubmodule(path) as BottleneckLayer;
          // Fresh random values in every adapter tensor (as after training).
          const slots = ['adapter_down_weight', 'adapter_down_bias', 'adapter_up_weight', 'adapter_up_bias', 'adapter_norm_before_weight', 'adapter_norm_before_bias', 'adapter_norm_after_weight', 'adapter_norm_after_bias'] as const;
          const values = new Map<BottleneckSlot, number[]>();
          slots.forEach((slot, k) => {
            const t = layer.maybeAdapterTensor('default', slot);
            if (!t) return;
            const lo = slot.includes('norm') && slot.endsWith('weight') ? 0.5 : -0.6;
            const v = Array.from(randomArray(t.size, 100 + k, lo, lo + 1.2));
            setValues(t, v);
            values.set(slot, v);
          });
          const m = layer.adapterTensor('default', 'adapter_down_weight').shape[0];
          const N = 2 * 5;
          const xs = Array.from(randomArray(N * D, 11, -1.5, 1.5));
          const g = Array.from(randomArray(N * D, 12, -1, 1));
          const x = own(tensor(Float32Array.from(xs), [2, 5, D], { backend }));
          const yBase = Array.from(await own(noGrad(() => (layer.base_layer as unknown as { forward(x: Tensor): Tensor }).forward(x))).data());

          const params = (): RefParams => {
            const get = (s: BottleneckSlot) => values.get(s) as number[];
            const ln = (w: BottleneckSlot, b: BottleneckSlot) => (values.has(w) ? { w: get(w), b: get(b) } : undefined);
            return {
              down: rows(get('adapter_down_weight'), m, D),
              downBias: get('adapter_down_bias'),
              up: rows(get('adapter_up_weight'), D, m),
              upBias: get('adapter_up_bias'),
              lnBefore: ln('adapter_norm_before_weight', 'adapter_norm_before_bias'),
              lnAfter: ln('adapter_norm_after_weight', 'adapter_norm_after_bias'),
            };
          };
          const want = reference(rows(xs, N, D), rows(yBase, N, D), params(), opts);
          const out = own(layer.forward(x));
          expectClose(await out.data(), want.flat(), { rtol: 1e-4, atol: 2e-5, label: `${family} ${name} ${backend} forward` });

          const gt = own(tensor(Float32Array.from(g), [2, 5, D], { backend }));
          const loss = own(sum(own(mul(out, gt))));
          loss.backward();
          const refLoss = () => reference(rows(xs, N, D), rows(yBase, N, D), params(), opts).flat().reduce((a, v, i) => a + v * g[i], 0);
          for (const [slot, arr] of values) {
            const grad = layer.adapterTensor('default', slot).grad;
            expect(grad, `${slot} has a gradient`).toBeTruthy();
            expectClose(await grad!.data(), numericGrad(arr, refLoss), { rtol: 2e-3, atol: 2e-4, label: `${family} ${name} ${backend} d${slot}` });
          }
          // The frozen base gets no gradient.
          expect(layer.base_layer.parameters().every((p) => p.grad === null && !p.requiresGrad)).toBe(true);
          expect(peft.trainableParameters().length).toBeGreaterThan(0);
          model.dispose();
        }
      });
    }
  }
});

async function logitsOf(model: { forward(input: { inputIds: Tensor }): unknown }, ids: Tensor): Promise<Float32Array> {
  const out = noGrad(() => model.forward({ inputIds: ids })) as { logits: Tensor };
  const data = (await out.logits.data()) as Float32Array;
  out.logits.dispose();
  return data;
}

async function lossOf(peft: PeftModel, ids: Tensor): Promise<number> {
  const out = noGrad(() => peft.forward({ inputIds: ids, labels: ids })) as { logits: Tensor; loss: Tensor };
  const v = await out.loss.item();
  out.logits.dispose();
  out.loss.dispose();
  return v;
}

function idsOn(backend: BackendName): Tensor {
  return own(tensor(randomInts(2 * 8, 32, 5), [2, 8], { dtype: 'i32', backend }));
}

describe('bottleneck adapters on GPT-2 and LLaMA', () => {
  const placements: [string, Partial<BottleneckConfig>, (family: 'gpt2' | 'llama') => string[]][] = [
    ['Houlsby', {}, (f) => (f === 'gpt2' ? ['attn', 'mlp'] : ['self_attn', 'mlp'])],
    ['Pfeiffer', { mhAdapter: false, nonLinearity: 'relu' }, () => ['mlp']],
    ['parallel', { isParallel: true, mhAdapter: false, nonLinearity: 'relu' }, () => ['mlp']],
  ];
  for (const family of ['gpt2', 'llama'] as const) {
    for (const [placement, config, sublayers] of placements) {
      it(`${family} ${placement}: placement, near-identity init, training lowers the loss, save/load round trip`, async () => {
        for (const backend of backendsUnderTest()) {
          manualSeed(11);
          const model = own(causalLMFromConfig(TINY[family], { backend }));
          const ids = idsOn(backend);
          const baseLogits = await logitsOf(model, ids);
          // mam_adapter init (up-projection zero) is exactly the identity.
          const peft = getPeftModel(model, { peftType: 'BOTTLENECK', reductionFactor: 4, initWeights: 'mam_adapter', ...config });
          const layers = peft.base_model.tunerLayers().map(([p]) => p);
          const prefix = family === 'gpt2' ? 'transformer.h' : 'model.layers';
          expect(layers).toEqual([0, 1].flatMap((i) => sublayers(family).map((s) => `${prefix}.${i}.${s}`)));
          // Per adapter: down [4, 16] + 4, up [16, 4] + 16.
          expect(peft.getNbTrainableParameters().trainable).toBe(layers.length * (64 + 4 + 64 + 16));
          expect(await logitsOf(peft, ids)).toEqual(baseLogits);

          const first = await lossOf(peft, ids);
          for (let i = 0; i < 5; i++) {
            const out = peft.forward({ inputIds: ids, labels: ids }) as { logits: Tensor; loss: Tensor };
            out.loss.backward();
            out.loss.dispose();
            out.logits.dispose();
            sgdStep(peft.trainableParameters(), 0.5);
          }
          const trained = await lossOf(peft, ids);
          expect(trained).toBeLessThan(first - 1e-3);
          const trainedLogits = await logitsOf(peft, ids);

          const dir = memoryFiles();
          await peft.saveAdapter(dir);
          const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
          expect(cfg).toMatchObject({ peft_type: 'BOTTLENECK', reduction_factor: 4, is_parallel: placement === 'parallel', mh_adapter: placement === 'Houlsby', output_adapter: true, init_weights: 'mam_adapter', original_ln_before: false, original_ln_after: true });
          const keys = [...parseSafetensors(dir.files.get('adapter_model.safetensors')!).tensors.keys()].sort();
          expect(keys).toEqual(layers.flatMap((p) => ['adapter_down.bias', 'adapter_down.weight', 'adapter_up.bias', 'adapter_up.weight'].map((k) => `base_model.model.${p}.${k}`)).sort());

          // The same seed gives the same base weights.
          manualSeed(11);
          const fresh = own(causalLMFromConfig(TINY[family], { backend }));
          const loaded = await loadPeftModel(fresh, dir);
          expect(loaded.getNbTrainableParameters().trainable).toBe(0);
          expectClose(await logitsOf(loaded, ids), trainedLogits, { rtol: 1e-5, atol: 1e-6, label: `${family} ${placement} ${backend} loaded` });
          fresh.dispose();
          model.dispose();
        }
      });
    }
  }

  it("bert init (AdapterHub's sequential default) is near the identity; houlsby init is small and truncated", async () => {
    for (const backend of backendsUnderTest()) {
      manualSeed(5);
      const model = own(causalLMFromConfig(TINY.gpt2, { backend }));
      const ids = idsOn(backend);
      const base = await logitsOf(model, ids);
      const peft = getPeftModel(model, { peftType: 'BOTTLENECK' });
      const layer = model.getSubmodule('transformer.h.0.mlp') as BottleneckLayer;
      expect(layer.adapterTensor('default', 'adapter_down_weight').shape).toEqual([1, 16]); // 16 // 16
      const adapted = await logitsOf(peft, ids);
      const maxDiff = Math.max(...adapted.map((v, i) => Math.abs(v - base[i])));
      expect(maxDiff).toBeGreaterThan(0);
      expect(maxDiff).toBeLessThan(0.05);
      const houlsby: BottleneckConfig = { peftType: 'BOTTLENECK', initWeights: 'houlsby', bottleneckSize: 8 };
      peft.addAdapter('h', houlsby);
      for (const slot of ['adapter_down_weight', 'adapter_up_weight'] as const) {
        const w = Array.from(await layer.adapterTensor('h', slot).data());
        expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(2e-2 + 1e-9);
        const std = Math.sqrt(w.reduce((a, v) => a + v * v, 0) / w.length);
        expect(std).toBeGreaterThan(4e-3);
        expect(std).toBeLessThan(1.2e-2);
      }
      expect(Array.from(await layer.adapterTensor('h', 'adapter_up_bias').data()).every((v) => v === 0)).toBe(true);
      model.dispose();
    }
  });

  it('disabling restores the base; merge and mergeAndUnload throw saying a bottleneck adapter cannot be merged, and change nothing', async () => {
    for (const backend of backendsUnderTest()) {
      manualSeed(6);
      const model = own(causalLMFromConfig(TINY.llama, { backend }));
      const ids = idsOn(backend);
      const base = await logitsOf(model, ids);
      const peft = getPeftModel(model, { peftType: 'BOTTLENECK', bottleneckSize: 4 });
      const before = await logitsOf(peft, ids);
      expect(before).not.toEqual(base);
      // Disabled adapters give the base model's logits exactly.
      expect(await peft.disableAdapter(() => logitsOf(peft, ids))).toEqual(base);
      await expect(peft.merge()).rejects.toThrow(/BOTTLENECK: a bottleneck adapter cannot be merged/);
      await expect(peft.mergeAndUnload()).rejects.toThrow(/cannot be merged/);
      expect(peft.base_model.tunerLayers().length).toBe(4);
      expect(await logitsOf(peft, ids)).toEqual(before);
      model.dispose();
    }
  });
});

describe('bottleneck config validation', () => {
  const model = () => own(causalLMFromConfig(TINY.gpt2, { backend: 'cpu' }));
  const bad: [Partial<BottleneckConfig> & Record<string, unknown>, RegExp][] = [
    [{ reductionFactor: 0 }, /BOTTLENECK config: reductionFactor must be a positive number, got 0/],
    [{ bottleneckSize: 2.5 }, /bottleneckSize must be a positive integer, got 2.5/],
    [{ nonLinearity: 'softplus' }, /nonLinearity must be one of relu, gelu, gelu_new, swish, silu, tanh, got "softplus"/],
    [{ scaling: 'learned' as unknown as number }, /scaling must be a finite number/],
    [{ initWeights: 'xavier' as 'bert' }, /initWeights must be one of bert, mam_adapter, houlsby/],
    [{ mhAdapter: false, outputAdapter: false }, /mhAdapter and outputAdapter are both false/],
    [{ originalLnBefore: true }, /originalLnBefore true .* is not supported/],
    [{ originalLnAfter: false }, /originalLnAfter false .* is not supported/],
    [{ dropout: 1 }, /dropout must be a number in \[0, 1\)/],
    [{ lnBefore: 'yes' as unknown as boolean }, /lnBefore must be a boolean, got "yes"/],
    [{ leaveOut: [-1] }, /leaveOut must be a list of layer indices/],
  ];
  for (const [config, message] of bad) {
    it(`rejects ${JSON.stringify(config)}`, () => {
      const m = model();
      expect(() => getPeftModel(m, { peftType: 'BOTTLENECK', ...config })).toThrow(message);
      // Nothing was wrapped.
      expect(m.namedModules().some(([p]) => p.endsWith('base_layer'))).toBe(false);
      m.dispose();
    });
  }

  it('an adapter_config.json with an unknown or mistyped field names it and loads nothing', async () => {
    const m = model();
    const files = (json: Record<string, unknown>) => memoryFiles({ 'adapter_config.json': JSON.stringify({ peft_type: 'BOTTLENECK', ...json }), 'adapter_model.safetensors': new Uint8Array(8) });
    await expect(loadPeftModel(m, files({ reduction_factr: 8 }))).rejects.toThrow(/unknown field\(s\) in adapter_config.json: reduction_factr/);
    await expect(loadPeftModel(m, files({ reduction_factor: '8' }))).rejects.toThrow(/reductionFactor must be a positive number, got "8"/);
    expect(m.namedModules().some(([p]) => p.endsWith('base_layer'))).toBe(false);
    m.dispose();
  });

  it('leaveOut skips layers; a model type without defaults needs the sublayer names', () => {
    const m = model();
    const peft = getPeftModel(m, { peftType: 'BOTTLENECK', leaveOut: [0] });
    expect(peft.base_model.tunerLayers().map(([p]) => p)).toEqual(['transformer.h.1.attn', 'transformer.h.1.mlp']);
    m.dispose();
    const other = model();
    (other as unknown as { config: { model_type: string } }).config.model_type = 'mystery';
    expect(() => getPeftModel(other, { peftType: 'BOTTLENECK' })).toThrow(/attentionModules is required: no default sublayer names for model type 'mystery'/);
    other.dispose();
  });
});

describe('a registered user method built on the bottleneck layer', () => {
  it('wraps the sublayers it chooses, trains, saves and loads through the public API', async () => {
    type OddLayersConfig = Omit<ResolvedBottleneckConfig, 'peftType'> & { peftType: 'ODD_BN' };
    // Adapters after the feed-forward block of odd layers only, with the built-in layer and config rules.
    registerPeftMethod<OddLayersConfig>({
      peftType: 'ODD_BN',
      resolveConfig: (c, m) => ({ ...resolveBottleneckConfig({ ...c, peftType: 'BOTTLENECK', mhAdapter: false }, m), peftType: 'ODD_BN' }),
      configToJson: (c) => bottleneckConfigToJson({ ...c, peftType: 'BOTTLENECK' }),
      configFromJson: (j) => ({ ...bottleneckConfigFromJson(j), peftType: 'ODD_BN' }) as unknown as OddLayersConfig,
      isTarget: (path, m) => m instanceof BottleneckLayer || /\.h\.\d*[13579]\.mlp$/.test(path),
      createLayer: (base) => new BottleneckLayer(base),
    });
    for (const backend of backendsUnderTest()) {
      manualSeed(21);
      const model = own(causalLMFromConfig(TINY.gpt2, { backend }));
      const ids = idsOn(backend);
      const peft = getPeftModel(model, { peftType: 'ODD_BN', bottleneckSize: 3, initWeights: 'mam_adapter' } as OddLayersConfig);
      expect(peft.base_model.tunerLayers().map(([p]) => p)).toEqual(['transformer.h.1.mlp']);
      const first = await lossOf(peft, ids);
      for (let i = 0; i < 3; i++) {
        const out = peft.forward({ inputIds: ids, labels: ids }) as { logits: Tensor; loss: Tensor };
        out.loss.backward();
        out.loss.dispose();
        out.logits.dispose();
        sgdStep(peft.trainableParameters(), 0.5);
      }
      expect(await lossOf(peft, ids)).toBeLessThan(first);
      const want = await logitsOf(peft, ids);
      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      manualSeed(21);
      const fresh = own(causalLMFromConfig(TINY.gpt2, { backend }));
      const loaded = await loadPeftModel(fresh, dir);
      expect(loaded.peftConfig.get('default')?.peftType).toBe('ODD_BN');
      expectClose(await logitsOf(loaded, ids), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} user method reloaded` });
      fresh.dispose();
      model.dispose();
    }
  });
});

describe('generation through bottleneck adapters', () => {
  it('greedy generate with the KV cache equals generate without it (the wrapped attention passes the cache through)', async () => {
    for (const backend of backendsUnderTest()) {
      for (const family of ['gpt2', 'llama'] as const) {
        manualSeed(31);
        const model = own(causalLMFromConfig(TINY[family], { backend }));
        getPeftModel(model, { peftType: 'BOTTLENECK', bottleneckSize: 4, initWeights: 'houlsby' });
        // Move the up-projections off their small init so the adapters change the tokens.
        for (const [, p] of model.namedParameters()) if (p.requiresGrad) setValues(p, Array.from(randomArray(p.size, p.size, -0.5, 0.5)));
        const prompt = [[3, 9, 4], [7, 1, 12]];
        // generate makes its input tensors on the current backend.
        const previous = getBackendName();
        setBackend(backend);
        try {
          const cached = await generate(model, prompt, { maxNewTokens: 5, eosTokenId: [] });
          const uncached = await generate(model, prompt, { maxNewTokens: 5, eosTokenId: [], useCache: false });
          expect(cached.sequences).toEqual(uncached.sequences);
        } finally {
          setBackend(previous);
        }
        model.dispose();
      }
    }
  });
});
