/**
 * Shared pieces of the conformance suites: seeded inputs, running one computation on
 * one backend (inputs created, outputs read back, everything disposed), and the
 * webgpu-vs-cpu comparison.
 */
import { type BackendName, type DType, type Tensor, tensor, tidy } from '@webpeft/tensor';
import { SeededRandom, backendsUnderTest, expectClose, liveCounts } from '@webpeft/test-utils';
import { expect } from 'vitest';

/** A host-side input: data in its dtype's array type, and a shape. */
export interface HostInput {
  data: Float32Array | Float64Array | Int32Array | Uint32Array;
  shape: readonly number[];
}

/** Host output of a run: dtype, shape and a float64 copy of the values. */
export interface HostOutput {
  dtype: DType;
  shape: readonly number[];
  values: Float64Array;
}

function count(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** Uniform f32 values in [lo, hi) of `shape` from a seeded generator independent of the runtime. */
export function uniform(shape: readonly number[], seed: number, lo = -1, hi = 1): HostInput {
  const r = new SeededRandom(seed);
  const data = new Float32Array(count(shape));
  for (let i = 0; i < data.length; i++) data[i] = r.uniform(lo, hi);
  return { data, shape };
}

/** Values whose magnitude lies in [lo, hi) with a random sign (away from zero). */
export function awayFromZero(shape: readonly number[], seed: number, lo = 0.5, hi = 2): HostInput {
  const r = new SeededRandom(seed);
  const data = new Float32Array(count(shape));
  for (let i = 0; i < data.length; i++) data[i] = (r.next() < 0.5 ? -1 : 1) * r.uniform(lo, hi);
  return { data, shape };
}

/** Values on a coarse grid (multiples of 0.5 in [-2, 2]) so that ties and equalities occur. */
export function coarse(shape: readonly number[], seed: number): HostInput {
  const r = new SeededRandom(seed);
  const data = new Float32Array(count(shape));
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(r.uniform(-4, 5)) / 2;
  return { data, shape };
}

/** Random i32 values in [lo, hi). */
export function ints(shape: readonly number[], seed: number, lo: number, hi: number): HostInput {
  const r = new SeededRandom(seed);
  const data = new Int32Array(count(shape));
  for (let i = 0; i < data.length; i++) data[i] = lo + Math.floor(r.next() * (hi - lo));
  return { data, shape };
}

/** The same input widened to float64 (for the cpu f64 reference runs). */
export function toF64(x: HostInput): HostInput {
  return x.data instanceof Float32Array ? { data: Float64Array.from(x.data), shape: x.shape } : x;
}

/**
 * Runs `fn` on `backend` over tensors made from `inputs` and reads every output back.
 * Checks that nothing the run created is left alive.
 */
export async function runOn(
  backend: BackendName,
  fn: (...xs: Tensor[]) => Tensor | Tensor[],
  inputs: readonly HostInput[],
): Promise<HostOutput[]> {
  const before = liveCounts(backend);
  const xs = inputs.map((x) => tensor(x.data, x.shape, { backend }));
  // The inputs (and outputs) are freed on every path: a kernel that throws must report
  // its own error, not add leak errors for the test's inputs on top of it.
  let outs: Tensor[] = [];
  const host: HostOutput[] = [];
  try {
    outs = tidy(() => {
      const r = fn(...xs);
      return Array.isArray(r) ? r : [r];
    });
    for (const o of outs) {
      const values = Float64Array.from(await o.data());
      host.push({ dtype: o.dtype, shape: [...o.shape], values });
    }
  } finally {
    for (const t of [...outs, ...xs]) t.dispose();
  }
  expect(liveCounts(backend), 'live tensors/buffers after the run').toEqual(before);
  return host;
}

/** Tolerances of one comparison. */
export interface Tol {
  rtol: number;
  atol: number;
}

/**
 * Runs `fn` on cpu and on webgpu (when available) with the same inputs and asserts
 * equal shapes and dtypes and values within `tol`. Returns the cpu outputs so callers
 * can also compare them with a float64 reference.
 */
export async function expectBackendsAgree(
  fn: (...xs: Tensor[]) => Tensor | Tensor[],
  inputs: readonly HostInput[],
  tol: Tol,
  label: string,
): Promise<HostOutput[]> {
  const cpu = await runOn('cpu', fn, inputs);
  if (!backendsUnderTest().includes('webgpu')) return cpu;
  const gpu = await runOn('webgpu', fn, inputs);
  expect(gpu.length, `${label}: output count`).toBe(cpu.length);
  for (let i = 0; i < cpu.length; i++) {
    expect(gpu[i].shape, `${label}: output ${i} shape`).toEqual(cpu[i].shape);
    expect(gpu[i].dtype, `${label}: output ${i} dtype`).toBe(cpu[i].dtype);
    expectClose(gpu[i].values, cpu[i].values, { ...tol, label: `${label} webgpu vs cpu, output ${i}` });
  }
  return cpu;
}

/** Row-major coordinates of flat index `i` in `shape`. */
export function coordsOf(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

/** Flat index in `shape` of coordinates `c` aligned right, with size-1 dims broadcast. */
export function broadcastIndex(c: readonly number[], shape: readonly number[]): number {
  let idx = 0;
  const off = c.length - shape.length;
  for (let d = 0; d < shape.length; d++) idx = idx * shape[d] + (shape[d] === 1 ? 0 : c[d + off]);
  return idx;
}

/**
 * Gradients of `sum(fn(...xs) * w)` (fixed weights `cos(1.3 i + 0.7)`, as `gradcheck`
 * uses) with respect to every float input not listed in `constant`, on `backend`.
 * Returns one array per input (null for constants) and checks nothing leaks.
 */
export async function gradsOn(
  backend: BackendName,
  fn: (...xs: Tensor[]) => Tensor,
  inputs: readonly HostInput[],
  constant: readonly number[] = [],
): Promise<(Float64Array | null)[]> {
  const { mul, sum } = await import('@webpeft/tensor');
  const before = liveCounts(backend);
  const xs = inputs.map((x, i) => {
    const isFloat = x.data instanceof Float32Array || x.data instanceof Float64Array;
    return tensor(x.data, x.shape, { backend, requiresGrad: isFloat && !constant.includes(i) });
  });
  const grads: (Float64Array | null)[] = [];
  try {
    tidy(() => {
      const out = fn(...xs);
      const w = tensor(
        Float64Array.from({ length: out.size }, (_, i) => Math.cos(1.3 * i + 0.7)),
        out.shape,
        { backend, dtype: out.dtype },
      );
      sum(mul(out, w)).backward();
    });
    for (const x of xs) {
      if (!x.requiresGrad) grads.push(null);
      else {
        expect(x.grad, `grad of input ${x.toString()}`).not.toBeNull();
        expect(x.grad!.shape).toEqual(x.shape);
        grads.push(Float64Array.from(await x.grad!.data()));
      }
    }
  } finally {
    // Freed on every path (their gradients with them), as in runOn.
    for (const x of xs) x.dispose();
  }
  expect(liveCounts(backend), 'live tensors/buffers after backward').toEqual(before);
  return grads;
}
