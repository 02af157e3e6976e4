/**
 * The fused attention op against a float64 reference written here (explicit scores,
 * softmax and their gradients), on fresh random inputs: outputs and dq/dk/dv, on every
 * backend (cpu runs the composite, webgpu the tiled kernels), for odd lengths, GQA, a
 * past offset, padding and per-query masks, Dh 64 and 32; the gradient composites on
 * cpu in f64; f16 inputs against the cpu f16 path; and bad input. (The kernels' peak
 * bytes at T = 1024: attention-memory.node.test.ts.)
 */
import {
  ATTENTION_MASKED_SCORE,
  type Tensor,
  add,
  cast,
  dropout,
  f16BitsToF32,
  f32ToF16Bits,
  fusedAttention,
  matmul,
  mul,
  randn,
  reshape,
  slice,
  softmax,
  sum,
  tensor,
  tidy,
  triu,
  full,
  minimum,
} from '@webpeft/tensor';
import { runComposite } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends, maxRelError } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, gradsOn, runOn, toF64, uniform } from './conformance.js';
import { webgpuHasF16 } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

interface AttnCase {
  name: string;
  b: number;
  h: number;
  hkv: number;
  t: number;
  l: number;
  dh: number;
  causal: boolean;
  /** Bias shape `[B | 1, 1, T | 1, L]`, or none. */
  bias?: [number, number, number, number];
}

const CASES: AttnCase[] = [
  { name: 'causal, T not a tile multiple, Dh 64', b: 1, h: 2, hkv: 2, t: 37, l: 37, dh: 64, causal: true },
  { name: 'GQA 4:2, Dh 32', b: 2, h: 4, hkv: 2, t: 19, l: 19, dh: 32, causal: true },
  { name: 'past offset (L = 40 + T)', b: 1, h: 4, hkv: 1, t: 9, l: 49, dh: 32, causal: true },
  { name: 'key padding mask', b: 2, h: 2, hkv: 1, t: 13, l: 13, dh: 64, causal: true, bias: [2, 1, 1, 13] },
  { name: 'per-query packing mask with a past', b: 2, h: 2, hkv: 2, t: 11, l: 14, dh: 32, causal: true, bias: [2, 1, 11, 14] },
  { name: 'not causal, one query', b: 1, h: 3, hkv: 3, t: 1, l: 35, dh: 32, causal: false },
];

/** Masks of `bias`: key/query pairs hidden at random (some rows wholly), 0 elsewhere. */
function biasInput(shape: readonly number[], seed: number): HostInput {
  const u = uniform(shape, seed, 0, 1);
  const data = Float32Array.from(u.data, (x, i) => (x < 0.3 || i % 17 === 0 ? ATTENTION_MASKED_SCORE : 0));
  return { data, shape: [...shape] };
}

function inputsOf(c: AttnCase, seed: number): HostInput[] {
  const list = [uniform([c.b, c.h, c.t, c.dh], seed, -1.5, 1.5), uniform([c.b, c.hkv, c.l, c.dh], seed + 1, -1.5, 1.5), uniform([c.b, c.hkv, c.l, c.dh], seed + 2)];
  if (c.bias) list.push(biasInput(c.bias, seed + 3));
  return list;
}

/** Output `[B, H, T, Dh]` and dq, dk, dv of `sum(out * w)` in float64, written from the definition. */
function reference(c: AttnCase, [q, k, v, bias]: HostInput[], scale: number, w: (i: number) => number) {
  const { b, h, hkv, t, l, dh } = c;
  const g = h / hkv;
  const out = new Float64Array(b * h * t * dh);
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      const kvh = Math.floor(hi / g);
      const kb = (bi * hkv + kvh) * l;
      for (let i = 0; i < t; i++) {
        const qo = ((bi * h + hi) * t + i) * dh;
        const s = new Float64Array(l);
        for (let j = 0; j < l; j++) {
          let dot = 0;
          for (let d = 0; d < dh; d++) dot += q.data[qo + d] * k.data[(kb + j) * dh + d];
          let m = 0;
          if (bias) {
            const [bb, , bt] = bias.shape;
            m = bias.data[((bb > 1 ? bi : 0) * bt + (bt > 1 ? i : 0)) * l + j];
          }
          if (c.causal && j > l - t + i) m = Math.min(m, ATTENTION_MASKED_SCORE);
          s[j] = dot * scale + m;
        }
        const mx = Math.max(...s);
        const e = s.map((x) => Math.exp(x - mx));
        const se = e.reduce((a, x) => a + x, 0);
        const p = e.map((x) => x / se);
        // forward, and dO = w at this row
        const dO = new Float64Array(dh);
        for (let d = 0; d < dh; d++) {
          let o = 0;
          for (let j = 0; j < l; j++) o += p[j] * v.data[(kb + j) * dh + d];
          out[qo + d] = o;
          dO[d] = w(qo + d);
        }
        // dP = dO v^T, dS = softmax backward, dq = scale dS k, dk += scale dS^T q, dv += P^T dO
        const dp = new Float64Array(l);
        let pdp = 0;
        for (let j = 0; j < l; j++) {
          for (let d = 0; d < dh; d++) dp[j] += dO[d] * v.data[(kb + j) * dh + d];
          pdp += p[j] * dp[j];
        }
        for (let j = 0; j < l; j++) {
          const ds = p[j] * (dp[j] - pdp) * scale;
          for (let d = 0; d < dh; d++) {
            dq[qo + d] += ds * k.data[(kb + j) * dh + d];
            dk[(kb + j) * dh + d] += ds * q.data[qo + d];
            dv[(kb + j) * dh + d] += p[j] * dO[d];
          }
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

const weight = (i: number) => Math.cos(1.3 * i + 0.7);
const scaleOf = (c: AttnCase) => 1 / Math.sqrt(c.dh) + 0.01;
const attn = (c: AttnCase) => (q: Tensor, k: Tensor, v: Tensor, bias?: Tensor) => fusedAttention(q, k, v, { scale: scaleOf(c), causal: c.causal, bias: bias ?? null });

/** `atol` for values of magnitude up to `max|expected|`: relative 1e-5 of the tensor's scale. */
function tolOf(expected: ArrayLike<number>, rtol: number) {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]));
  return { rtol, atol: rtol * m };
}

describe('fusedAttention against a float64 reference', () => {
  CASES.forEach((c, ci) => {
    it(`${c.name}: output and dq, dk, dv within 1e-5 relative`, async () => {
      const inputs = inputsOf(c, 100 + 10 * ci);
      const ref = reference(c, inputs, scaleOf(c), weight);
      for (const backend of backendsUnderTest()) {
        if (backend === 'meta') continue;
        const [o] = await runOn(backend, attn(c), inputs);
        expect(o.shape).toEqual([c.b, c.h, c.t, c.dh]);
        expectClose(o.values, ref.out, { ...tolOf(ref.out, 1e-5), label: `${c.name} on ${backend}: output` });
        const grads = await gradsOn(backend, attn(c), inputs, [3]);
        const names = ['dq', 'dk', 'dv'] as const;
        names.forEach((n, i) => expectClose(grads[i]!, ref[n], { ...tolOf(ref[n], 1e-5), label: `${c.name} on ${backend}: ${n}` }));
      }
    });
  });

  it('the gradient composites (used where only the forward has a kernel) equal the reference in f64', async () => {
    const c = CASES[4];
    const inputs = inputsOf(c, 300).map(toF64);
    const ref = reference(c, inputs, scaleOf(c), weight);
    const attrs = { scale: scaleOf(c), causal: c.causal };
    const [dq, dkv] = await runOn('cpu', (q, k, v, bias) => {
      const out = runComposite('FusedAttention', [q, k, v, bias], attrs);
      // dy of the packed output: w at the attention output, 0 at the statistics columns.
      const dy = tensor(Float64Array.from({ length: out.size }, (_, i) => (i % (c.dh + 2) < c.dh ? weight(Math.floor(i / (c.dh + 2)) * c.dh + (i % (c.dh + 2))) : 0)), out.shape, { dtype: 'f64', backend: 'cpu' });
      const whole = [-1, -1, -1, c.dh];
      const rowDot = sum(mul(slice(dy, [0, 0, 0, 0], whole), slice(out, [0, 0, 0, 0], whole)), -1);
      return [runComposite('FusedAttentionGradQ', [dy, q, k, v, out, rowDot, bias], attrs), runComposite('FusedAttentionGradKV', [dy, q, k, v, out, rowDot, bias], attrs)];
    }, inputs);
    expectClose(dq.values, ref.dq, { rtol: 1e-9, atol: 1e-12, label: 'dq composite (f64)' });
    const half = ref.dk.length;
    expectClose(dkv.values.subarray(0, half), ref.dk, { rtol: 1e-9, atol: 1e-12, label: 'dk composite (f64)' });
    expectClose(dkv.values.subarray(half), ref.dv, { rtol: 1e-9, atol: 1e-12, label: 'dv composite (f64)' });
  });
});

describe('fusedAttention in f16', () => {
  it('f16 inputs (f32 accumulation) stay within the bounds documented here of the cpu f16 eager path and of f32', async () => {
    if (!webgpuHasF16()) return;
    const c: AttnCase = { name: 'f16', b: 1, h: 4, hkv: 2, t: 21, l: 24, dh: 32, causal: true, bias: [1, 1, 1, 24] };
    // Inputs exactly representable in f16, so the f32 runs see the same values.
    const inputs = inputsOf(c, 500).map((x, i) => ({ ...x, data: x.data.map((v) => (i === 3 ? (v < 0 ? -65504 : 0) : f16BitsToF32(f32ToF16Bits(v)))) }));
    const half = (fn: (...xs: Tensor[]) => Tensor) => (...xs: Tensor[]) => cast(fn(...xs.map((x) => cast(x, 'f16'))), 'f32');
    const eager = (q: Tensor, k: Tensor, v: Tensor, bias: Tensor) => {
      const g = c.h / c.hkv;
      const s = reshape(mul(matmul(reshape(q, [c.b, c.hkv, g * c.t, c.dh]), k, { transposeB: true }), scaleOf(c)), [c.b, c.h, c.t, c.l]);
      const causal = reshape(triu(full([c.t, c.l], -65504, { dtype: 'f16', backend: q.backend.name }), c.l - c.t + 1, 0), [1, 1, c.t, c.l]);
      const p = dropout(softmax(add(s, minimum(bias, causal))), 0, false);
      return reshape(matmul(reshape(p, [c.b, c.hkv, g * c.t, c.l]), v), [c.b, c.h, c.t, c.dh]);
    };
    const [fused] = await runOn('webgpu', half(attn(c)), inputs);
    const [cpuEager] = await runOn('cpu', half(eager), inputs);
    const [f32] = await runOn('webgpu', attn(c), inputs);
    // The fused path rounds once (its output); the eager f16 path rounds scores,
    // probabilities and the product, so it sits within a few f16 ulps (2^-11 relative).
    const vsEager = maxRelError(fused.values, cpuEager.values, 0.05);
    const vsF32 = maxRelError(fused.values, f32.values, 0.05);
    expect(vsEager, 'fused f16 vs cpu eager f16 (relative, floor 0.05)').toBeLessThan(1e-2);
    expect(vsF32, 'fused f16 vs f32 on f16-rounded inputs').toBeLessThan(2e-3);
    const gf = await gradsOn('webgpu', half(attn(c)), inputs, [3]);
    const g32 = await gradsOn('webgpu', attn(c), inputs, [3]);
    for (let i = 0; i < 3; i++) {
      const err = maxRelError(gf[i]!, g32[i]!, 0.05);
      expect(err, `f16 gradient ${['dq', 'dk', 'dv'][i]} vs f32`).toBeLessThan(2e-2);
    }
  });
});

describe('fusedAttention bad input', () => {
  it('names the op and shapes for wrong ranks, heads, bias shapes, dtypes and a bias that requires grad', () => {
    const be = backendsUnderTest().includes('webgpu') ? 'webgpu' : 'cpu';
    tidy(() => {
      const q = randn([1, 3, 4, 8], { backend: be });
      const k = randn([1, 2, 4, 8], { backend: be });
      const k1 = randn([1, 1, 4, 8], { backend: be });
      expect(() => fusedAttention(q, k, k)).toThrow(/fusedAttention: .*H a multiple of H_kv/);
      expect(() => fusedAttention(reshape(q, [3, 4, 8]), k1, k1)).toThrow(/fusedAttention: q \[3,4,8\]/);
      expect(() => fusedAttention(q, k1, k1, { bias: randn([1, 1, 2, 4], { backend: be }) })).toThrow(/bias \[1,1,2,4\] must be \[1 \| 1, 1, 4 \| 1, 4\]/);
      expect(() => fusedAttention(q, k1, cast(k1, 'i32'))).toThrow(/fusedAttention: expected f16, f32 or f64, got i32/);
      const learned = randn([1, 1, 1, 4], { backend: be, requiresGrad: true });
      expect(() => fusedAttention(q, k1, k1, { bias: learned })).toThrow(/requires grad/);
      expect(() => fusedAttention(q, randn([1, 1, 0, 8], { backend: be }), randn([1, 1, 0, 8], { backend: be }))).toThrow(/no keys/);
    });
  });
});
