/**
 * The LLaMA-family fused kernels (`SwiGLU` + `SwiGLUBackward`, `Rope` / `RopeGrad`,
 * `AddRmsNorm`) on cpu and webgpu against float64 references written here, forward and
 * gradients, in f32 and in f16 (f32 accumulation, one rounding per output), with GQA
 * head counts, shared `[T, Dh]` and per-row `[B, T, Dh]` tables at position offsets
 * (KV cache / prefix), and rows narrower and wider than one workgroup.
 */
import { type Tensor, add, addRmsNorm, cast, f16BitsToF32, f32ToF16Bits, mul, profile, reshape, ropeHeads, swiglu, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HostInput, expectBackendsAgree, gradsOn, uniform } from './conformance.js';
import { webgpuHasF16 } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

/** The fixed output weights `gradsOn` uses: the gradient of `sum(out * w)` is backprop of `w`. */
const weights = (n: number) => Float64Array.from({ length: n }, (_, i) => Math.cos(1.3 * i + 0.7));
const f16Round = (v: number) => f16BitsToF32(f32ToF16Bits(v));
/** The same input rounded onto the f16 grid (so f16 runs start from the reference's values). */
const onF16 = (x: HostInput): HostInput => ({ data: Float32Array.from(x.data as Float32Array, f16Round), shape: x.shape });
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

const F32 = { rtol: 2e-5, atol: 2e-6 };

// ---- float64 references ----------------------------------------------------------

/** RoPE tables `cos`, `sin` for `positions` (`[T]` or `[B][T]`) as transformers builds them, in f32. */
function tables(positions: number[] | number[][], dh: number): { cos: HostInput; sin: HostInput } {
  const rows = Array.isArray(positions[0]) ? (positions as number[][]).flat() : (positions as number[]);
  const shape = Array.isArray(positions[0]) ? [positions.length, positions[0].length, dh] : [positions.length, dh];
  const c = new Float32Array(rows.length * dh);
  const s = new Float32Array(rows.length * dh);
  rows.forEach((p, r) => {
    for (let j = 0; j < dh; j++) {
      const f = 1 / 10000 ** ((2 * (j % (dh / 2))) / dh);
      c[r * dh + j] = Math.cos(p * f);
      s[r * dh + j] = Math.sin(p * f);
    }
  });
  return { cos: { data: c, shape }, sin: { data: s, shape } };
}

/** `rotate_half` as an explicit `[Dh, Dh]` matrix `R` with `(R x)_j = sum_i R[j][i] x_i`. */
function rotation(dh: number): number[][] {
  const h = dh / 2;
  const r = Array.from({ length: dh }, () => new Array<number>(dh).fill(0));
  for (let j = 0; j < h; j++) r[j][j + h] = -1;
  for (let j = h; j < dh; j++) r[j][j - h] = 1;
  return r;
}

/** RoPE forward `[B, T, H, Dh] -> [B, H, T, Dh]` and the gradient of `sum(out * w)` in float64. */
function ropeRef(x: HostInput, cos: HostInput, sin: HostInput): { out: Float64Array; dx: Float64Array } {
  const [b, t, h, dh] = x.shape;
  const R = rotation(dh);
  const w = weights(x.data.length);
  const out = new Float64Array(x.data.length);
  const dx = new Float64Array(x.data.length);
  for (let bi = 0; bi < b; bi++)
    for (let ti = 0; ti < t; ti++) {
      const tr = (cos.shape.length === 3 ? bi * t + ti : ti) * dh;
      for (let hi = 0; hi < h; hi++) {
        const xi = ((bi * t + ti) * h + hi) * dh;
        const oi = ((bi * h + hi) * t + ti) * dh;
        for (let j = 0; j < dh; j++) {
          let rx = 0;
          for (let i = 0; i < dh; i++) rx += R[j][i] * x.data[xi + i];
          out[oi + j] = x.data[xi + j] * cos.data[tr + j] + rx * sin.data[tr + j];
          // d out_j / d x_i = cos_j [i == j] + sin_j R[j][i]
          for (let i = 0; i < dh; i++) dx[xi + i] += w[oi + j] * ((i === j ? cos.data[tr + j] : 0) + sin.data[tr + j] * R[j][i]);
        }
      }
    }
  return { out, dx };
}

const siluRef = (g: number) => g / (1 + Math.exp(-g));

/** SwiGLU forward and the gradients of `sum(out * w)` in float64. */
function swigluRef(g: HostInput, u: HostInput): { out: Float64Array; dg: Float64Array; du: Float64Array } {
  const w = weights(g.data.length);
  const out = new Float64Array(g.data.length);
  const dg = new Float64Array(g.data.length);
  const du = new Float64Array(g.data.length);
  for (let i = 0; i < out.length; i++) {
    const gv = g.data[i];
    const sg = 1 / (1 + Math.exp(-gv));
    out[i] = siluRef(gv) * u.data[i];
    du[i] = w[i] * siluRef(gv);
    dg[i] = w[i] * u.data[i] * (sg + gv * sg * (1 - sg));
  }
  return { out, dg, du };
}

/**
 * `0.75 sum + normed` of residual add + RMS norm, and the gradients of `sum(that * w)`
 * for x (= residual's) and the weight, in float64.
 */
function addNormRef(x: HostInput, r: HostInput, wt: HostInput, eps: number, roundSum: (v: number) => number = (v) => v) {
  const d = wt.data.length;
  const rows = x.data.length / d;
  const w = weights(x.data.length);
  const sum = new Float64Array(x.data.length);
  const normed = new Float64Array(x.data.length);
  const dx = new Float64Array(x.data.length);
  const dw = new Float64Array(d);
  for (let row = 0; row < rows; row++) {
    const o = row * d;
    let ms = 0;
    for (let j = 0; j < d; j++) {
      sum[o + j] = roundSum(x.data[o + j] + r.data[o + j]);
      ms += sum[o + j] ** 2;
    }
    const rstd = 1 / Math.sqrt(ms / d + eps);
    let gx = 0;
    for (let j = 0; j < d; j++) {
      normed[o + j] = sum[o + j] * rstd * wt.data[j];
      gx += w[o + j] * wt.data[j] * sum[o + j] * rstd;
      dw[j] += w[o + j] * sum[o + j] * rstd;
    }
    gx /= d;
    for (let j = 0; j < d; j++) dx[o + j] = 0.75 * w[o + j] + rstd * (w[o + j] * wt.data[j] - sum[o + j] * rstd * gx);
  }
  const out = sum.map((s, i) => 0.75 * s + normed[i]);
  return { sum, normed, out, dx, dw };
}

// ---- cases -------------------------------------------------------------------------

interface RopeCase {
  label: string;
  x: HostInput;
  cos: HostInput;
  sin: HostInput;
}

function ropeCases(): RopeCase[] {
  // Queries (4 heads) and keys (2 heads, GQA) of 3 new tokens after 5 cached ones;
  // per-row positions of a left-padded batch; a head dim of 64 over 2 tokens.
  const q = { x: uniform([2, 3, 4, 8], 1, -2, 2), ...tables([5, 6, 7], 8) };
  const k = { x: uniform([2, 3, 2, 8], 2, -2, 2), ...tables([5, 6, 7], 8) };
  const rows = { x: uniform([2, 4, 3, 6], 3, -2, 2), ...tables([[0, 0, 1, 2], [3, 4, 5, 6]], 6) };
  const wide = { x: uniform([1, 2, 2, 64], 4, -2, 2), ...tables([100, 101], 64) };
  return [
    { label: 'q [2, 3, 4, 8] at offset 5', ...q },
    { label: 'GQA k [2, 3, 2, 8] at offset 5', ...k },
    { label: 'per-row tables [2, 4, 6]', ...rows },
    { label: 'head dim 64', ...wide },
  ];
}

const ropeFn = (dtype: 'f32' | 'f16') => (x: Tensor, c: Tensor, s: Tensor) =>
  dtype === 'f32' ? ropeHeads(x, c, s) : cast(ropeHeads(cast(x, 'f16'), cast(c, 'f16'), cast(s, 'f16')), 'f32');

describe('Rope (rotary embedding on heads)', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`matches float64 forward and gradient on every backend (${dtype})`, async () => {
      if (dtype === 'f16' && !webgpuHasF16()) return;
      for (const c of ropeCases()) {
        const inputs = dtype === 'f32' ? [c.x, c.cos, c.sin] : [onF16(c.x), onF16(c.cos), onF16(c.sin)];
        const ref = ropeRef(inputs[0], inputs[1], inputs[2]);
        const [b, t, h, dh] = c.x.shape;
        const tol = dtype === 'f32' ? F32 : { rtol: 2 ** -10, atol: 2 ** -11 * maxAbs(ref.out) };
        const [cpu] = await expectBackendsAgree(ropeFn(dtype), inputs, dtype === 'f32' ? F32 : { rtol: 2 ** -10, atol: 2 ** -12 }, `Rope ${dtype} ${c.label}`);
        expect(cpu.shape).toEqual([b, h, t, dh]);
        expectClose(cpu.values, ref.out, { ...tol, label: `Rope ${dtype} ${c.label} vs float64` });
        for (const backend of backendsUnderTest()) {
          const [dx] = await gradsOn(backend, ropeFn(dtype), inputs, [1, 2]);
          const gtol = dtype === 'f32' ? F32 : { rtol: 2 ** -8, atol: 2 ** -9 * maxAbs(ref.dx) };
          expectClose(dx!, ref.dx, { ...gtol, label: `RopeGrad ${dtype} ${c.label} on ${backend}` });
        }
      }
    });
  }

  it('refuses tables of the wrong shape, an odd head dim and tables that require grad', () => {
    const x = tensor(new Float32Array(2 * 3 * 2 * 4).fill(0.5), [2, 3, 2, 4], { backend: 'cpu' });
    const good = tensor(new Float32Array(12).fill(0.25), [3, 4], { backend: 'cpu' });
    const bad = tensor(new Float32Array(8).fill(0.25), [2, 4], { backend: 'cpu' });
    const odd = tensor(new Float32Array(2 * 3 * 2 * 3).fill(0.5), [2, 3, 2, 3], { backend: 'cpu' });
    const trainable = tensor(new Float32Array(12).fill(0.25), [3, 4], { backend: 'cpu', requiresGrad: true });
    expect(() => ropeHeads(x, bad, good)).toThrow(/ropeHeads: cos \[2,4\] must be \[3, 4\] or \[2, 3, 4\]/);
    expect(() => ropeHeads(odd, good, good)).toThrow(/ropeHeads: head dim 3/);
    expect(() => ropeHeads(x, good, trainable)).toThrow(/require grad/);
    expect(() => tidy(() => ropeHeads(reshape(x, [6, 2, 4]), good, good))).toThrow(/must be \[B, T, H, Dh\]/);
    for (const t of [x, good, bad, odd, trainable]) t.dispose();
  });
});

const swigluFn = (dtype: 'f32' | 'f16') => (g: Tensor, u: Tensor) => (dtype === 'f32' ? swiglu(g, u) : cast(swiglu(cast(g, 'f16'), cast(u, 'f16')), 'f32'));

describe('SwiGLU', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`matches float64 forward and both gradients on every backend (${dtype})`, async () => {
      if (dtype === 'f16' && !webgpuHasF16()) return;
      for (const shape of [[3, 17], [2, 5, 300]]) {
        const raw = [uniform(shape, 10 + shape.length, -6, 6), uniform(shape, 20 + shape.length, -2, 2)];
        const inputs = dtype === 'f32' ? raw : raw.map(onF16);
        const ref = swigluRef(inputs[0], inputs[1]);
        const label = `SwiGLU ${dtype} [${shape.join(', ')}]`;
        const tol = dtype === 'f32' ? F32 : { rtol: 2 ** -10, atol: 2 ** -14 };
        const [cpu] = await expectBackendsAgree(swigluFn(dtype), inputs, tol, label);
        expectClose(cpu.values, ref.out, { ...tol, label: `${label} vs float64` });
        for (const backend of backendsUnderTest()) {
          const [dg, du] = await gradsOn(backend, swigluFn(dtype), inputs);
          const gtol = dtype === 'f32' ? F32 : { rtol: 2 ** -9, atol: 2 ** -13 };
          expectClose(dg!, ref.dg, { ...gtol, label: `${label} d gate on ${backend}` });
          expectClose(du!, ref.du, { ...gtol, label: `${label} d up on ${backend}` });
        }
      }
    });
  }
});

const EPS = 1e-6;
const addNormFn = (dtype: 'f32' | 'f16') => (x: Tensor, r: Tensor, w: Tensor) => {
  const [xx, rr, ww] = dtype === 'f32' ? [x, r, w] : [cast(x, 'f16'), cast(r, 'f16'), cast(w, 'f16')];
  const { sum, normed } = addRmsNorm(xx, rr, ww, EPS);
  const out = add(mul(sum, 0.75), normed);
  return dtype === 'f32' ? out : cast(out, 'f32');
};

describe('AddRmsNorm (residual add + RMS norm)', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`matches float64 sum, norm and gradients on every backend (${dtype})`, async () => {
      if (dtype === 'f16' && !webgpuHasF16()) return;
      // Rows narrower than the 64-thread workgroup, and wider (several strides per thread).
      for (const shape of [[5, 24], [2, 3, 200]]) {
        const d = shape[shape.length - 1];
        const raw = [uniform(shape, 30 + d, -3, 3), uniform(shape, 40 + d, -3, 3), uniform([d], 50 + d, 0.5, 1.5)];
        const inputs = dtype === 'f32' ? raw : raw.map(onF16);
        const ref = addNormRef(inputs[0], inputs[1], inputs[2], EPS, dtype === 'f16' ? f16Round : undefined);
        const label = `AddRmsNorm ${dtype} [${shape.join(', ')}]`;
        // Both results, read separately.
        const both = (x: Tensor, r: Tensor, w: Tensor) => {
          const [xx, rr, ww] = dtype === 'f32' ? [x, r, w] : [cast(x, 'f16'), cast(r, 'f16'), cast(w, 'f16')];
          const o = addRmsNorm(xx, rr, ww, EPS);
          return dtype === 'f32' ? [o.sum, o.normed] : [cast(o.sum, 'f32'), cast(o.normed, 'f32')];
        };
        const tol = dtype === 'f32' ? F32 : { rtol: 2 ** -10, atol: 2 ** -12 };
        const [sum, normed] = await expectBackendsAgree(both, inputs, tol, label);
        expectClose(sum.values, ref.sum, { ...tol, label: `${label} sum vs float64` });
        expectClose(normed.values, ref.normed, { ...tol, label: `${label} normed vs float64` });
        for (const backend of backendsUnderTest()) {
          const [dx, dr, dw] = await gradsOn(backend, addNormFn(dtype), inputs);
          const gtol = dtype === 'f32' ? { rtol: 1e-4, atol: 1e-5 } : { rtol: 2 ** -8, atol: 2 ** -8 * maxAbs(ref.dw) };
          expectClose(dx!, ref.dx, { ...gtol, label: `${label} dx on ${backend}` });
          expectClose(dr!, ref.dx, { ...gtol, label: `${label} d residual on ${backend}` });
          expectClose(dw!, ref.dw, { ...gtol, label: `${label} d weight on ${backend}` });
        }
      }
    });
  }

  it('refuses mismatched shapes and dtypes, naming the op', () => {
    const x = tensor(new Float32Array(8).fill(0.5), [2, 4], { backend: 'cpu' });
    const r = tensor(new Float32Array(4).fill(0.5), [1, 4], { backend: 'cpu' });
    const w = tensor(new Float32Array(3).fill(1), [3], { backend: 'cpu' });
    expect(() => addRmsNorm(x, r, w)).toThrow(/addRmsNorm: x \[2,4\] and residual \[1,4\] must have one shape/);
    expect(() => addRmsNorm(x, x, w)).toThrow(/addRmsNorm: weight \[3\] must be \[4\] for x \[2,4\]/);
    for (const t of [x, r, w]) t.dispose();
  });
});

describe('profile() of the fused ops', () => {
  it('counts one dispatch per fused op forward and one per fused gradient', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const backend = 'webgpu';
    const g = tensor(uniform([4, 16], 60).data, [4, 16], { backend, requiresGrad: true });
    const u = tensor(uniform([4, 16], 61).data, [4, 16], { backend, requiresGrad: true });
    const c = ropeCases()[1];
    const x = tensor(c.x.data, c.x.shape, { backend, requiresGrad: true });
    const cs = tensor(c.cos.data, c.cos.shape, { backend });
    const sn = tensor(c.sin.data, c.sin.shape, { backend });
    const a = tensor(uniform([4, 16], 66).data, [4, 16], { backend, requiresGrad: true });
    const r = tensor(uniform([4, 16], 62).data, [4, 16], { backend, requiresGrad: true });
    const w = tensor(uniform([16], 63, 0.5, 1.5).data, [16], { backend, requiresGrad: true });
    const dy = tensor(uniform([4, 16], 64).data, [4, 16], { backend });
    const dyRope = tensor(uniform([2, 2, 3, 8], 65).data, [2, 2, 3, 8], { backend });

    // `backward(dy)` first copies the given gradient (one BinaryScalar `dy + 0`).
    const sw = await profile(() => tidy(() => swiglu(g, u).backward(dy)));
    expect(Object.fromEntries(Object.entries(sw.ops).map(([n, o]) => [n, o.dispatches]))).toEqual({ SwiGLU: 1, BinaryScalar: 1, SwiGLUBackward: 1 });
    expect(sw.dispatches).toBe(3);

    const rp = await profile(() => tidy(() => ropeHeads(x, cs, sn).backward(dyRope)));
    expect(Object.fromEntries(Object.entries(rp.ops).map(([n, o]) => [n, o.dispatches]))).toEqual({ Rope: 1, BinaryScalar: 1, RopeGrad: 1 });
    expect(rp.dispatches).toBe(3);

    // Forward: one kernel for both results. Backward of `normed`: RmsNormGrad to the sum
    // (passed through the Add to x and r: no dispatch) and RmsNormWeightGrad. Here x and r
    // are leaves sharing that one gradient, so the second `.grad` gets its own copy (a
    // BinaryScalar besides dy's); inside a model they are intermediate and nothing is copied.
    const an = await profile(() => tidy(() => addRmsNorm(a, r, w, EPS).normed.backward(dy)));
    expect(Object.fromEntries(Object.entries(an.ops).map(([n, o]) => [n, o.dispatches]))).toEqual({ AddRmsNorm: 1, BinaryScalar: 2, RmsNormGrad: 1, RmsNormWeightGrad: 1 });
    expect(an.dispatches).toBe(5);
    for (const t of [g, u, x, cs, sn, a, r, w, dy, dyRope]) {
      t.grad?.dispose();
      t.dispose();
    }
  });

});
