/**
 * `packedQkvAttention` (GPT-2's attention read in place from `c_attn`'s output): a
 * float64 reference written here for the forward, the split/permute/eager path for the
 * gradients, on every backend; and the dispatches it saves in a GPT-2 training step.
 */
import { GPT2LMHeadModel, attentionBias, packedQkvAttention, scaledDotProductAttention } from '@webpeft/nn';
import { type BackendName, type Tensor, manualSeed, mul, permute, profile, reshape, split, sum, tensor, tidy } from '@webpeft/tensor';
import { SeededRandom, backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

/** Causal softmax(q k^T * scale) v per head in float64, merged to `[B, T, H * Dh]`. */
function reference(qkv: Float32Array, b: number, t: number, h: number, dh: number, scale: number): Float64Array {
  const d = h * dh;
  const out = new Float64Array(b * t * d);
  const el = (bi: number, ti: number, which: number, hi: number, j: number) => qkv[(bi * t + ti) * 3 * d + which * d + hi * dh + j];
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let i = 0; i < t; i++) {
        const s = Array.from({ length: i + 1 }, (_, j) => {
          let acc = 0;
          for (let p = 0; p < dh; p++) acc += el(bi, i, 0, hi, p) * el(bi, j, 1, hi, p);
          return acc * scale;
        });
        const mx = Math.max(...s);
        const e = s.map((x) => Math.exp(x - mx));
        const z = e.reduce((p, x) => p + x, 0);
        for (let p = 0; p < dh; p++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j] / z) * el(bi, j, 2, hi, p);
          out[(bi * t + i) * d + hi * dh + p] = acc;
        }
      }
    }
  }
  return out;
}

/** The path GPT-2 takes with a cache: heads split and permuted out, eager attention, merged back. */
function splitPath(qkv: Tensor, h: number, bias: Tensor | null, scale: number): Tensor {
  const [b, t, w] = qkv.shape;
  const dh = w / 3 / h;
  const heads = permute(reshape(qkv, [b, t, 3, h, dh]), [2, 0, 3, 1, 4]);
  const [q, k, v] = split(heads, 3, 0).map((y) => reshape(y, [b, h, t, dh]));
  const o = scaledDotProductAttention(q, k, v, { bias, scale });
  return reshape(permute(o, [0, 2, 1, 3]), [b, t, w / 3]);
}

async function run(backend: BackendName, data: Float32Array, shape: number[], h: number, packed: boolean): Promise<{ out: Float64Array; grad: Float64Array }> {
  const qkv = tensor(data, shape, { backend, requiresGrad: true });
  const scale = 1 / Math.sqrt(shape[2] / 3 / h);
  const out = tidy(() => {
    const bias = attentionBias(shape[1], shape[1], null, backend);
    const o = packed ? packedQkvAttention(qkv, h, { bias, scale, dropoutP: 0, training: true }) : splitPath(qkv, h, bias, scale);
    const w = tensor(
      Float64Array.from({ length: o.size }, (_, i) => Math.cos(1.3 * i + 0.7)),
      o.shape,
      { backend, dtype: 'f32' },
    );
    sum(mul(o, w)).backward();
    return o;
  });
  const result = { out: Float64Array.from(await out.data()), grad: Float64Array.from(await qkv.grad!.data()) };
  out.dispose();
  qkv.dispose();
  return result;
}

describe('packedQkvAttention', () => {
  for (const [b, t, h, dh] of [
    [2, 8, 2, 4],
    [1, 5, 3, 3],
  ]) {
    it(`qkv [${b}, ${t}, ${3 * h * dh}], ${h} heads: float64 forward, gradients of the split path, on every backend`, async () => {
      const r = new SeededRandom(b * 100 + t);
      const data = Float32Array.from({ length: b * t * 3 * h * dh }, () => r.uniform(-1, 1));
      const ref = reference(data, b, t, h, dh, 1 / Math.sqrt(dh));
      for (const backend of backendsUnderTest()) {
        const packed = await run(backend, data, [b, t, 3 * h * dh], h, true);
        const old = await run(backend, data, [b, t, 3 * h * dh], h, false);
        expectClose(packed.out, ref, { rtol: 1e-5, atol: 1e-6, label: `${backend} forward vs float64` });
        expectClose(packed.grad, old.grad, { rtol: 1e-5, atol: 1e-6, label: `${backend} dqkv vs the split path` });
      }
    });
  }

  it('a GPT-2 decoder layer of a training step on webgpu: no head copies forward (exact counts)', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const counts = async (layers: number) => {
      manualSeed(0);
      const model = new GPT2LMHeadModel(
        { model_type: 'gpt2', vocab_size: 64, n_positions: 16, n_embd: 16, n_layer: layers, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 },
        { backend: 'webgpu' },
      );
      const ids = tensor(
        Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 64),
        [2, 8],
        { dtype: 'i32', backend: 'webgpu' },
      );
      try {
        model.train();
        const p = await profile(() => tidy(() => model.forward({ inputIds: ids, labels: ids }).loss!.backward()));
        return { mm: p.ops.StridedMatMul.dispatches, copies: p.ops.StridedCopy.dispatches, acc: p.ops.Accumulate.dispatches, add: p.ops.Add.dispatches };
      } finally {
        model.dispose();
        ids.dispose();
      }
    };
    const one = await counts(1);
    const two = await counts(2);
    // Per layer, forward: q k^T and probs v read from qkv (2); backward: dprobs, dv, dq,
    // dk (4). Copies: dv, the first gradient of qkv backward, goes into qkv's layout as a
    // zero-filled copy (a fill and a copy: 2); dq and dk then add into their windows of
    // that buffer in place (2 Accumulates, where each was a fill, a copy and an Add).
    expect(two.mm - one.mm).toBe(6);
    expect(two.copies - one.copies).toBe(2);
    // The other 2 Accumulates are the residual stream: each residual input's pass-through
    // gradient (shared with its branch's) and its norm's gradient sum into the latter in
    // place. So a layer's only Adds are the forward's: the attention bias and 2 residuals.
    expect(two.acc - one.acc).toBe(4);
    expect(two.add - one.add).toBe(3);
  });
});
