import { Linear } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { LoraEmbedding, LoraLinear, TunerLayer, getPeftModel } from '../index.js';
import golden from './fixtures/lora_golden.json' with { type: 'json' };
import { CodeLinear } from './fake-quant.js';
import { Container, ToyGPT } from './toy-models.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

function toy(backend: BackendName): { model: ToyGPT; ids: Tensor } {
  const model = new ToyGPT(golden.sizes, backend);
  model.loadBase(golden.base);
  return { model: own(model), ids: own(tensor(new Int32Array(golden.ids), [golden.sizes.batch, golden.sizes.seq], { backend })) };
}

let seed = 100;
function randomize(t: Tensor, scale = 0.5): void {
  const src = tensor(randomArray(t.size, seed++, -scale, scale) as Float32Array, t.shape, { backend: t.backend.name });
  noGrad(() => assign(t, src));
  src.dispose();
}

async function host(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

/** Row-major float64 product [m, k] x [k, n]. */
function mm(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + p] * b[p * n + j];
  return out;
}

describe('PeftModel adapter management', () => {
  it('add, set, disable (scoped), delete adapters', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = toy(backend);
      const baseLogits = await own(model.forward(ids)).data();
      const peft = getPeftModel(model, { peftType: 'LORA', r: 2, targetModules: ['c_attn', 'c_proj'] });
      const oneAdapter = peft.getNbTrainableParameters();
      // r=2 on Conv1D 8->12 and Linear 12->8: 2*(8+12) * 2.
      expect(oneAdapter.trainable).toBe(80);
      peft.addAdapter('b', { peftType: 'LORA', r: 4, targetModules: ['c_proj'] });
      expect(peft.activeAdapter).toBe('default');
      expect(peft.getNbTrainableParameters().trainable).toBe(80);
      for (const [, layer] of peft.base_model.tunerLayers()) for (const n of layer.adapterNames()) for (const t of layer.adapterParameters(n)) randomize(t);
      const withDefault = await own(peft.forward(ids) as Tensor).data();
      peft.setAdapter('b');
      expect(peft.getNbTrainableParameters().trainable).toBe(4 * (12 + 8));
      const withB = await own(peft.forward(ids) as Tensor).data();
      expect(Math.max(...withB.map((v, i) => Math.abs(v - withDefault[i])))).toBeGreaterThan(1e-3);
      // Disabled: exactly the base model; restored afterwards (also for async callbacks).
      const disabled = await peft.disableAdapter(async () => own(peft.forward(ids) as Tensor).data());
      expectClose(disabled, baseLogits, { rtol: 1e-6, atol: 1e-6, label: `${backend} disabled` });
      expectClose(await own(peft.forward(ids) as Tensor).data(), withB, { rtol: 1e-6, atol: 1e-6, label: `${backend} re-enabled` });
      peft.deleteAdapter('b');
      expect(peft.activeAdapter).toBe('default');
      expect(peft.namedParameters().some(([n]) => n.includes('.b.'))).toBe(false);
      expect(peft.getNbTrainableParameters()).toEqual(oneAdapter);
      expectClose(await own(peft.forward(ids) as Tensor).data(), withDefault, { rtol: 1e-6, atol: 1e-6, label: `${backend} after delete` });
      expect(() => peft.setAdapter('b')).toThrow(/no adapter 'b'/);
      model.dispose();
    }
  });

  it('parameter names follow PEFT (base_model.model.<path>.lora_A.<adapter>.weight)', () => {
    const { model } = toy('cpu');
    const peft = getPeftModel(model, { peftType: 'LORA', targetModules: ['c_attn', 'wte'] });
    const names = peft.namedParameters().map(([n]) => n);
    expect(names).toContain('base_model.model.transformer.h.0.attn.c_attn.base_layer.weight');
    expect(names).toContain('base_model.model.transformer.h.0.attn.c_attn.lora_A.default.weight');
    expect(names).toContain('base_model.model.transformer.h.0.attn.c_attn.lora_B.default.weight');
    expect(names).toContain('base_model.model.transformer.wte.lora_embedding_A.default');
    expect(peft.trainableParameters().length).toBe(4);
    model.dispose();
  });

  it('merge, unmerge and mergeAndUnload keep the outputs', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = toy(backend);
      const peft = getPeftModel(model, { peftType: 'LORA', r: 3, loraAlpha: 6, targetModules: ['c_attn', 'c_proj', 'wte'] });
      for (const [, layer] of peft.base_model.tunerLayers()) for (const t of layer.adapterParameters('default')) randomize(t);
      const want = await own(peft.forward(ids) as Tensor).data();
      await peft.merge();
      expectClose(await own(peft.forward(ids) as Tensor).data(), want, { rtol: 1e-4, atol: 1e-5, label: `${backend} merged` });
      await peft.unmerge();
      expectClose(await own(peft.forward(ids) as Tensor).data(), want, { rtol: 1e-4, atol: 1e-5, label: `${backend} unmerged` });
      const plain = (await peft.mergeAndUnload()) as ToyGPT;
      expect(plain.modules().some((m) => m instanceof TunerLayer)).toBe(false);
      expect(plain.namedParameters().map(([n]) => n)).toContain('transformer.h.0.attn.c_attn.weight');
      expectClose(await own(plain.forward(ids)).data(), want, { rtol: 1e-4, atol: 1e-5, label: `${backend} unloaded` });
      plain.dispose();
    }
  });

  it('DoRA mergeAndUnload keeps the outputs and frees the norms its merge kept for unmerge', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = toy(backend);
      const peft = getPeftModel(model, { peftType: 'LORA', r: 2, loraAlpha: 4, targetModules: ['c_proj'], useDora: true });
      for (const [, layer] of peft.base_model.tunerLayers()) for (const t of layer.adapterParameters('default')) randomize(t);
      const want = await own(peft.forward(ids) as Tensor).data();
      // The per-test leak check fails the test if the merged layer's norms outlive it.
      const plain = (await peft.mergeAndUnload()) as ToyGPT;
      expectClose(await own(plain.forward(ids)).data(), want, { rtol: 1e-4, atol: 1e-5, label: `${backend} DoRA unloaded` });
      plain.dispose();
    }
  });
});

describe('QLoRA composition: LoRA over a quantized LinearLike', () => {
  const [IN, OUT, R] = [6, 5, 2];
  const W = randomArray(IN * OUT, 7, -1, 1) as Float32Array;
  const SCALE = 1 / 127;

  function quantModel(backend: BackendName): Container {
    return own(new Container({ layers: new Container({ q_proj: new CodeLinear(IN, OUT, W, SCALE, backend) }) }));
  }

  it('counts packed weights as out*in, trains only A and B, and merges by dequantize + re-quantize or into a full-precision Linear', async () => {
    for (const backend of backendsUnderTest()) {
      const model = quantModel(backend);
      const peft = getPeftModel(model, { peftType: 'LORA', r: R, loraAlpha: 4, targetModules: ['q_proj'] });
      expect(peft.getNbTrainableParameters()).toEqual({ trainable: R * (IN + OUT), all: IN * OUT + R * (IN + OUT) });
      const layer = model.getSubmodule('layers.q_proj') as LoraLinear;
      const { A, B } = layer.weights('default');
      randomize(A);
      randomize(B);
      const x = own(tensor(randomArray(3 * IN, 9) as Float32Array, [3, IN], { backend }));
      const want = await host(own(layer.forward(x)));
      // float64 reference of the merged weight: deq(W) + 2 * B A.
      const deq = Array.from(W, (w) => Math.max(-127, Math.min(127, Math.round(w / SCALE))) * SCALE);
      const [hA, hB] = [await host(A), await host(B)];
      const ba = mm(hB, hA, OUT, R, IN);
      const merged = deq.map((w, i) => w + 2 * ba[i]);

      // Full precision: the LinearLike becomes an nn Linear holding the merged weight.
      const plain = own(await peft.mergeAndUnload({ dequantize: true }));
      const lin = plain.getSubmodule('layers.q_proj');
      expect(lin).toBeInstanceOf(Linear);
      expectClose(await (lin as Linear).weight.data(), merged, { rtol: 1e-5, atol: 1e-6, label: `${backend} dequantized merge` });
      expectClose(await own((lin as Linear).forward(x)).data(), want, { rtol: 1e-4, atol: 1e-5, label: `${backend} dequantized forward` });

      // Re-quantized: the base keeps its storage type; codes are the rounded merged weight.
      const model2 = quantModel(backend);
      const peft2 = getPeftModel(model2, { peftType: 'LORA', r: R, loraAlpha: 4, targetModules: ['q_proj'] });
      const w2 = (model2.getSubmodule('layers.q_proj') as LoraLinear).weights('default');
      for (const [dst, src] of [[w2.A, hA], [w2.B, hB]] as const) {
        const t = tensor(Float32Array.from(src), dst.shape, { backend });
        noGrad(() => assign(dst, t));
        t.dispose();
      }
      const plain2 = own(await peft2.mergeAndUnload());
      const q = plain2.getSubmodule('layers.q_proj') as CodeLinear;
      expect(q).toBeInstanceOf(CodeLinear);
      const codes = Array.from(await q.codes.data());
      const wantCodes = merged.map((w) => Math.max(-127, Math.min(127, Math.round(w / SCALE))));
      // f32 rounding may move a value sitting on a half-code boundary by one code.
      expect(Math.max(...codes.map((c, i) => Math.abs(c - wantCodes[i])))).toBeLessThanOrEqual(1);
      expect(codes.filter((c, i) => c !== wantCodes[i]).length).toBeLessThanOrEqual(1);
      x.dispose();
    }
  });
});

describe('addWeightedAdapter', () => {
  /** Two LoRA adapters (r 2 and 2, alphas 4 and 2) on c_proj and wte with random weights. */
  function twoAdapters(backend: BackendName) {
    const { model, ids } = toy(backend);
    const peft = getPeftModel(model, { peftType: 'LORA', r: 2, loraAlpha: 4, targetModules: ['c_proj', 'wte'] }, 'a');
    peft.addAdapter('b', { peftType: 'LORA', r: 2, loraAlpha: 2, targetModules: ['c_proj', 'wte'] });
    for (const [, layer] of peft.base_model.tunerLayers()) for (const n of ['a', 'b']) for (const t of layer.adapterParameters(n)) randomize(t);
    return { model, ids, peft };
  }
  const weights = [0.7, 0.4];
  const scalings = [2, 1];

  it("'linear': A' = sum sqrt(w s) A_i, B' = sum sqrt(w s) B_i", async () => {
    for (const backend of backendsUnderTest()) {
      const { model, peft } = twoAdapters(backend);
      await peft.addWeightedAdapter(['a', 'b'], weights, 'ab', { combinationType: 'linear' });
      for (const path of ['transformer.h.0.mlp.c_proj', 'transformer.wte']) {
        const layer = model.getSubmodule(path) as LoraLinear | LoraEmbedding;
        const [a, b, ab] = ['a', 'b', 'ab'].map((n) => layer.weights(n));
        expect(ab.scaling).toBe(1); // lora_alpha = r, as PEFT sets it
        for (const key of ['A', 'B'] as const) {
          const ha = await host(a[key]);
          const hb = await host(b[key]);
          const want = ha.map((v, i) => Math.sqrt(weights[0] * scalings[0]) * v + Math.sqrt(weights[1] * scalings[1]) * hb[i]);
          expectClose(await ab[key].data(), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} ${path} ${key}` });
        }
      }
      model.dispose();
    }
  });

  it("'cat' and 'svd' give delta = sum w_i s_i B_i A_i at full rank (PEFT 0.21 scales the svd deltas once)", async () => {
    for (const backend of backendsUnderTest()) {
      const { model, peft } = twoAdapters(backend);
      await peft.addWeightedAdapter(['a', 'b'], weights, 'cat', { combinationType: 'cat' });
      await peft.addWeightedAdapter(['a', 'b'], weights, 'svd', { combinationType: 'svd', svdRank: 4 });
      const layer = model.getSubmodule('transformer.h.0.mlp.c_proj') as LoraLinear;
      const [OUT, IN] = [golden.sizes.hidden, golden.sizes.attnOut];
      const terms = await Promise.all(['a', 'b'].map(async (n) => { const w = layer.weights(n); return mm(await host(w.B), await host(w.A), OUT, 2, IN); }));
      for (const name of ['cat', 'svd'] as const) {
        const w = layer.weights(name);
        expect(w.A.shape).toEqual([4, IN]);
        const got = mm(await host(w.B), await host(w.A), OUT, 4, IN);
        const want = terms[0].map((v, i) => weights[0] * scalings[0] * v + weights[1] * scalings[1] * terms[1][i]);
        expectClose(got, want, { rtol: 1e-4, atol: 1e-5, label: `${backend} ${name} delta` });
      }
      // Embedding: delta in [dim, numEmbeddings] orientation.
      const emb = model.getSubmodule('transformer.wte') as LoraEmbedding;
      const [V, D] = [golden.sizes.vocab, golden.sizes.hidden];
      const eTerms = await Promise.all(['a', 'b'].map(async (n) => { const w = emb.weights(n); return mm(await host(w.B), await host(w.A), D, 2, V); }));
      const sv = emb.weights('svd');
      const got = mm(await host(sv.B), await host(sv.A), D, 4, V);
      const want = eTerms[0].map((v, i) => weights[0] * scalings[0] * v + weights[1] * scalings[1] * eTerms[1][i]);
      expectClose(got, want, { rtol: 1e-4, atol: 1e-5, label: `${backend} svd embedding delta` });
      model.dispose();
    }
  });

  it('rejects unequal ranks for linear, DoRA adapters and unknown names', async () => {
    const { model, peft } = twoAdapters('cpu');
    peft.addAdapter('c', { peftType: 'LORA', r: 3, targetModules: ['c_proj'] });
    await expect(peft.addWeightedAdapter(['a', 'c'], [1, 1], 'x', { combinationType: 'linear' })).rejects.toThrow(/same r/);
    await expect(peft.addWeightedAdapter(['a', 'zz'], [1, 1], 'x')).rejects.toThrow(/zz does not exist/);
    peft.addAdapter('d', { peftType: 'LORA', r: 2, targetModules: ['c_proj'], useDora: true });
    await expect(peft.addWeightedAdapter(['a', 'd'], [1, 1], 'x', { combinationType: 'cat' })).rejects.toThrow(/DoRA/);
    model.dispose();
  });
});

