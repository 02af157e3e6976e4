import { fromPretrained, openSource } from '@webpeft/nn';
import { type BackendName, type Tensor, manualSeed, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CombinationType, type TaskMergeMethod, LoraEmbedding, LoraLinear, loadPeftModel, memoryFiles, mergeTaskTensors, svd } from '../index.js';
import golden from './fixtures/merge_golden.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';
import { clampSymmetric } from '../tuners/lora/weighted.js';

checkLeaksPerTest();

// Reference values: tools/golden/merge_golden.py, PEFT 0.21's own add_weighted_adapter on
// three LoRA adapters of a tiny transformers LLaMA (DARE with recorded masks).
const DELTA_TOL = { rtol: 1e-5, atol: 1e-5 };
const LOGITS_TOL = { rtol: 1e-4, atol: 1e-4 };

interface Case {
  combinationType: CombinationType;
  adapters: string[];
  weights: number[];
  options: { density?: number; majority_sign_method?: 'total' | 'frequency'; svd_rank?: number; svd_full_matrices?: boolean; svd_clamp?: number };
  r: number;
  deltas: Record<string, { shape: number[]; f32: string }>;
  masks: Record<string, { shape: number[]; bits: string }[]>;
  logits: string;
  /** svd_clamp cases: torch's factors per module, `U_r S_r [rows, r]` and `Vh_r [r, cols]`. */
  factors?: Record<string, { U: string; Vh: string; rows: number; cols: number }>;
}
const cases = golden.cases as Case[];

beforeAll(async () => {
  await initBackends();
});

const f32 = (b64: string) => new Float32Array(base64Bytes(b64).buffer);

/** The tiny LLaMA with PEFT's three saved adapters loaded as p1, p2, p3. */
async function loaded(backend: BackendName) {
  const files = golden.checkpoint;
  const model = own((await fromPretrained(openSource({ 'config.json': files['config.json'], 'model.safetensors': base64Bytes(files['model.safetensors']) }), { backend })).model);
  const adapter = (n: 'p1' | 'p2' | 'p3') => memoryFiles({ 'adapter_config.json': golden.adapters[n]['adapter_config.json'], 'adapter_model.safetensors': base64Bytes(golden.adapters[n]['adapter_model.safetensors']) });
  const peft = await loadPeftModel(model, adapter('p1'), { adapterName: 'p1' });
  await peft.loadAdapter(adapter('p2'), 'p2');
  await peft.loadAdapter(adapter('p3'), 'p3');
  const ids = own(tensor(Int32Array.from(golden.inputIds.flat()), [golden.inputIds.length, golden.inputIds[0].length], { dtype: 'i32', backend }));
  return { model, peft, ids };
}

function optionsOf(c: Case) {
  return {
    combinationType: c.combinationType,
    density: c.options.density,
    majoritySignMethod: c.options.majority_sign_method,
    svdRank: c.options.svd_rank,
    svdFullMatrices: c.options.svd_full_matrices,
    svdClamp: c.options.svd_clamp,
  };
}

async function take(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

/** Row-major float64 product [m, k] x [k, n]. */
function mm(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + p] * b[p * n + j];
  return out;
}

function transposed(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

describe("addWeightedAdapter equals PEFT 0.21's add_weighted_adapter", () => {
  it('every deterministic combination type: the merged delta per module and the logits', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, peft, ids } = await loaded(backend);
      for (const [i, c] of cases.entries()) {
        if (c.combinationType.startsWith('dare') || c.factors) continue;
        const name = `m${i}`;
        const label = `${backend} ${name} ${c.combinationType}(${c.adapters.join(', ')})`;
        await peft.addWeightedAdapter(c.adapters, c.weights, name, optionsOf(c));
        expect(peft.peftConfig.get(name)).toMatchObject({ r: c.r, loraAlpha: c.r });
        for (const [path, want] of Object.entries(c.deltas)) {
          const layer = model.getSubmodule(path) as LoraLinear | LoraEmbedding;
          const got = layer.deltaWeight(name);
          expect(got.shape, `${label} ${path}`).toEqual(want.shape);
          expectClose(await take(got), f32(want.f32), { ...DELTA_TOL, label: `${label} ${path}` });
        }
        peft.setAdapter(name);
        expectClose(await take(noGrad(() => peft.forward({ inputIds: ids })).logits), f32(c.logits), { ...LOGITS_TOL, label: `${label} logits` });
      }
    }
  });

  it("svdClamp: PEFT's clamp applied to torch's own factors gives PEFT's delta; ours stays within its quantile", async () => {
    const c = cases.find((x) => x.factors)!;
    const q = c.options.svd_clamp!;
    for (const [path, f] of Object.entries(c.factors!)) {
      const [U, Vh] = [f32(f.U), f32(f.Vh)];
      clampSymmetric(U, Vh, q);
      // The new adapter's scaling is 1 (loraAlpha = r), so its delta is U Vh.
      const delta = new Float64Array(f.rows * f.cols);
      for (let i = 0; i < f.rows; i++) for (let k = 0; k < c.r; k++) for (let j = 0; j < f.cols; j++) delta[i * f.cols + j] += U[i * c.r + k] * Vh[k * f.cols + j];
      // Embedding deltas are [numEmbeddings, dim] (deltaWeight), the factors [dim, numEmbeddings].
      const want = f32(c.deltas[path].f32);
      const got = c.deltas[path].shape[0] === f.rows ? delta : transposed(delta, f.rows, f.cols);
      expectClose(got, want, { ...DELTA_TOL, label: `clamp ${path}` });
    }
    for (const backend of backendsUnderTest()) {
      const { model, peft } = await loaded(backend);
      await peft.addWeightedAdapter(c.adapters, c.weights, 'clamped', optionsOf(c));
      for (const path of Object.keys(c.factors!)) {
        const { A, B } = (model.getSubmodule(path) as LoraLinear).weights('clamped');
        const all = [...(await A.data()), ...(await B.data())].sort((x, y) => x - y);
        // The clamp leaves the entries above the quantile at hi (the maximum), so at least
        // (1 - q) of them share it, and nothing is below -hi.
        const hi = all[all.length - 1];
        const atHi = all.filter((v) => v === hi).length;
        expect(atHi, `${backend} ${path} entries at the clamp`).toBeGreaterThanOrEqual(Math.floor((1 - q) * (all.length - 1)));
        expect(all[0], `${backend} ${path}`).toBeGreaterThanOrEqual(-hi);
      }
    }
  });

  it('svdFullMatrices and svdDriver: the option names PEFT takes, one SVD behind them', async () => {
    const { peft } = await loaded('cpu');
    await expect(peft.addWeightedAdapter(['p1', 'p2'], [1, 1], 'x', { combinationType: 'svd', svdDriver: 'gesvda' })).rejects.toThrow(/option 'svdDriver' "gesvda" is not available: the one SVD here is one-sided Jacobi.*'gesvdj' and 'gesvd'/);
    await expect(peft.addWeightedAdapter(['p1', 'p2'], [1, 1], 'x', { combinationType: 'linear', svdClamp: 0.5 })).rejects.toThrow(/option 'svdClamp' applies only to the svd combination types/);
    await expect(peft.addWeightedAdapter(['p1', 'p2'], [1, 1], 'x', { combinationType: 'svd', svdClamp: 2 })).rejects.toThrow(/option 'svdClamp' must be a quantile in \[0, 1\]/);
    await peft.addWeightedAdapter(['p1', 'p2'], [0.5, 0.5], 'j', { combinationType: 'svd', svdDriver: 'gesvdj', svdFullMatrices: false });
    await peft.addWeightedAdapter(['p1', 'p2'], [0.5, 0.5], 'q', { combinationType: 'svd', svdDriver: 'gesvd' });
    for (const [, layer] of peft.base_model.tunerLayers()) {
      if (!layer.hasAdapter('j')) continue;
      const l = layer as LoraLinear;
      expectClose(await take(l.deltaWeight('j')), await take(l.deltaWeight('q')), { rtol: 0, atol: 0, label: 'gesvdj and gesvd run the same SVD' });
    }
  });

  it("DARE (dare_linear, dare_ties and their _svd forms) given PEFT's masks", async () => {
    for (const backend of backendsUnderTest()) {
      const { model } = await loaded(backend);
      for (const c of cases.filter((x) => x.combinationType.startsWith('dare'))) {
        const svdForm = c.combinationType.endsWith('_svd');
        const method = (svdForm ? c.combinationType.slice(0, -4) : c.combinationType) as TaskMergeMethod;
        const opts = { density: c.options.density, majoritySignMethod: c.options.majority_sign_method };
        for (const [path, want] of Object.entries(c.deltas)) {
          const label = `${backend} ${c.combinationType} ${path}`;
          const layer = model.getSubmodule(path) as LoraLinear | LoraEmbedding;
          const present = c.adapters.map((a, i) => [a, c.weights[i]] as const).filter(([a]) => layer.adapterNames().includes(a));
          const masks = c.masks[path].map((m) => own(tensor(Float32Array.from(m.bits, (b) => Number(b)), m.shape, { backend })));
          const isEmb = layer instanceof LoraEmbedding;
          // PEFT's orientation of the reference: [out, in], or [vocab, dim] for the embedding.
          const [rows, cols] = isEmb ? [want.shape[1], want.shape[0]] : want.shape;
          let delta: Float64Array;
          if (svdForm) {
            // PEFT merges the deltas as get_delta_weight returns them ([vocab, dim] for the
            // embedding, where its masks were drawn); the merge is elementwise, the SVD is not.
            const deltas = present.map(([a]) => own(layer.deltaWeight(a)));
            const mergedRaw = Float64Array.from(await take(await mergeTaskTensors(method, deltas, present.map(([, w]) => w), { ...opts, dareMasks: masks })));
            const merged = isEmb ? transposed(mergedRaw, cols, rows) : mergedRaw;
            const { U, S, Vh, k } = svd(merged, rows, cols);
            delta = new Float64Array(rows * cols);
            for (let i = 0; i < rows; i++) for (let q = 0; q < c.r; q++) for (let j = 0; j < cols; j++) delta[i * cols + j] += U[i * k + q] * S[q] * Vh[q * cols + j];
          } else {
            const ws = present.map(([a, w]) => w * layer.weights(a).scaling);
            const n = present.length;
            const A = await take(await mergeTaskTensors(method, present.map(([a]) => layer.weights(a).A), ws.map((w) => Math.sign(w) * Math.sqrt(Math.abs(w))), { ...opts, dareMasks: masks.slice(0, n) }));
            const B = await take(await mergeTaskTensors(method, present.map(([a]) => layer.weights(a).B), ws.map((w) => Math.sqrt(Math.abs(w))), { ...opts, dareMasks: masks.slice(n) }));
            delta = mm(B, A, rows, c.r, cols);
          }
          expectClose(isEmb ? transposed(delta, rows, cols) : delta, f32(want.f32), { ...DELTA_TOL, label });
        }
      }
    }
  });

  it('DARE with its own masks: the kept fraction is density and kept values are rescaled by 1 / density', async () => {
    for (const backend of backendsUnderTest()) {
      manualSeed(31);
      const n = 128 * 128;
      const values = randomArray(n, 77, -1, 1) as Float32Array;
      const t = own(tensor(values, [128, 128], { backend }));
      for (const density of [0.3, 0.7]) {
        const got = await take(await mergeTaskTensors('dare_linear', [t], [1], { density }));
        let kept = 0;
        for (let i = 0; i < n; i++) {
          if (got[i] === 0) continue;
          kept++;
          expect(Math.abs(got[i] - values[i] / density)).toBeLessThanOrEqual(1e-6 * Math.abs(values[i] / density));
        }
        // Binomial(n, density): 5 standard deviations.
        expect(Math.abs(kept / n - density)).toBeLessThan(5 * Math.sqrt((density * (1 - density)) / n));
      }
    }
  });

  it('dare types through addWeightedAdapter are reproducible from manualSeed and keep about density of each factor', async () => {
    const { model, peft } = await loaded('cpu');
    const draws: Float32Array[] = [];
    for (const name of ['d1', 'd2']) {
      manualSeed(5);
      await peft.addWeightedAdapter(['p1', 'p2'], [1, 0.5], name, { combinationType: 'dare_linear', density: 0.5 });
      draws.push(await take((model.getSubmodule('model.layers.0.mlp.down_proj') as LoraLinear).deltaWeight(name)));
    }
    expect(Array.from(draws[1])).toEqual(Array.from(draws[0]));
    manualSeed(6);
    await peft.addWeightedAdapter(['p1', 'p2'], [1, 0.5], 'd3', { combinationType: 'dare_linear', density: 0.5 });
    const other = await take((model.getSubmodule('model.layers.0.mlp.down_proj') as LoraLinear).deltaWeight('d3'));
    expect(Array.from(other)).not.toEqual(Array.from(draws[0]));
  });

  it('rejects bad arguments with errors naming the option, and adds nothing', async () => {
    const { peft } = await loaded('cpu');
    const before = [...peft.peftConfig.keys()];
    const bad: [string[], number[], string, Record<string, unknown>, RegExp][] = [
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'ties' }, /option 'density' is required for combinationType 'ties'/],
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'dare_linear', density: 0 }, /option 'density' must be > 0/],
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'ties', density: 1.5 }, /option 'density' must be in \[0, 1\]/],
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'linear', density: 0.5 }, /option 'density' applies only to/],
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'ties', density: 0.5, majoritySignMethod: 'mean' }, /option 'majoritySignMethod'/],
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'avg' }, /option 'combinationType' "avg" is not one of/],
      [['p1', 'p2'], [1, 1], 'x', { combinationType: 'svd', svdRank: 0 }, /option 'svdRank' must be a positive integer/],
      [['p1', 'p2'], [1, Number.NaN], 'x', {}, /weights must be finite/],
      [['p1', 'p2'], [1], 'x', {}, /one weight per adapter/],
      [['p1', 'p2'], [1, 1], 'p3', {}, /adapter 'p3' already exists/],
    ];
    for (const [adapters, weights, name, options, message] of bad) await expect(peft.addWeightedAdapter(adapters, weights, name, options as never)).rejects.toThrow(message);
    // svdRank past min(rows, cols) fails part-way (v_proj is [8, 16]): the new adapter is removed again.
    await expect(peft.addWeightedAdapter(['p1', 'p2'], [1, 1], 'x', { combinationType: 'svd', svdRank: 10 })).rejects.toThrow(/option 'svdRank' 10 exceeds min\(8, 16\) at 'model.layers.0.self_attn.v_proj'/);
    expect([...peft.peftConfig.keys()]).toEqual(before);
    for (const [, layer] of peft.base_model.tunerLayers()) expect(layer.adapterNames()).not.toContain('x');
  });
});

describe('mergeTaskTensors against a float64 reference written here', () => {
  it('ties with total and frequency sign election, magnitude pruning, and their errors', async () => {
    const n = 40;
    const raw = [randomArray(n, 3, -1, 1), randomArray(n, 4, -1, 1), randomArray(n, 5, -1, 1)] as Float32Array[];
    const weights = [0.6, -0.3, 1.2];
    const density = 0.5;
    const k = Math.floor(density * n);
    const pruned = raw.map((v) => {
      const keepIdx = new Set([...v.keys()].sort((a, b) => Math.abs(v[b]) - Math.abs(v[a])).slice(0, k));
      return Array.from(v, (x, i) => (keepIdx.has(i) ? x : 0));
    });
    for (const method of ['total', 'frequency'] as const) {
      const want = new Float64Array(n).map((_, j) => {
        const vote = pruned.reduce((s, p) => s + (method === 'total' ? p[j] : Math.sign(p[j])), 0);
        const major = vote >= 0 ? 1 : -1;
        let acc = 0;
        let count = 0;
        pruned.forEach((p, i) => {
          if (Math.sign(p[j]) === major) {
            acc += weights[i] * p[j];
            count++;
          }
        });
        return acc / Math.max(count, 1);
      });
      for (const backend of backendsUnderTest()) {
        const ts = raw.map((v) => own(tensor(v, [8, 5], { backend })));
        expectClose(await take(await mergeTaskTensors('ties', ts, weights, { density, majoritySignMethod: method })), want, { rtol: 1e-6, atol: 1e-7, label: `${backend} ties ${method}` });
        const mp = new Float64Array(n).map((_, j) => pruned.reduce((s, p, i) => s + weights[i] * p[j], 0));
        expectClose(await take(await mergeTaskTensors('magnitude_prune', ts, weights, { density })), mp, { rtol: 1e-6, atol: 1e-7, label: `${backend} magnitude_prune` });
      }
    }
    const [a, b] = [own(tensor(raw[0], [8, 5], { backend: 'cpu' })), own(tensor(raw[1], [5, 8], { backend: 'cpu' }))];
    await expect(mergeTaskTensors('linear', [a, b], [1, 1])).rejects.toThrow(/must share one shape/);
    await expect(mergeTaskTensors('dare_ties', [a], [1], { density: 0.5, dareMasks: [b] })).rejects.toThrow(/option 'dareMasks': mask shape \[5, 8\]/);
    await expect(mergeTaskTensors('ties', [a], [1], { density: 0.5, dareMasks: [a] })).rejects.toThrow(/option 'dareMasks' applies only to dare/);
  });
});
