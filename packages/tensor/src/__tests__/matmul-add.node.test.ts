/**
 * `matmulAdd` (`alpha * op(a) op(b) + c` with the scale and the addend applied in the
 * matmul kernel's store) on every webgpu matmul variant against a float64 reference
 * written here, for each epilogue (no addend, a bias row, a full addend); its errors.
 * Node only, like `matmul-kernels.node.test.ts` (SwiftShader compiles the unrolled
 * variants for minutes); the composites suite checks it against its composite with
 * gradients on every backend.
 */
import { DTypeError, ShapeError, matmulAdd, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MatmulVariant, setMatmulVariantOverride } from '../backends/webgpu/kernels/matmul.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(() => setMatmulVariantOverride(null));

let seed = 11;

/** `alpha * op(A) op(B) + C` in float64; C `[n]` broadcast over rows, `[m, n]`, or absent. */
function reference(a: ArrayLike<number>, b: ArrayLike<number>, c: ArrayLike<number> | null, m: number, k: number, n: number, tA: boolean, tB: boolean, alpha: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[tA ? p * m + i : i * k + p] * b[tB ? j * k + p : p * n + j];
      out[i * n + j] = alpha * s + (c === null ? 0 : c.length === n ? c[j] : c[i * n + j]);
    }
  }
  return out;
}

async function check(variant: MatmulVariant, [m, k, n]: [number, number, number], tA: boolean, tB: boolean, addend: 'none' | 'row' | 'full', alpha: number): Promise<void> {
  setMatmulVariantOverride(variant);
  const ad = randomArray(m * k, seed++);
  const bd = randomArray(k * n, seed++);
  const cd = addend === 'none' ? null : randomArray(addend === 'row' ? n : m * n, seed++);
  const a = tensor(ad, tA ? [k, m] : [m, k], { backend: 'webgpu' });
  const b = tensor(bd, tB ? [n, k] : [k, n], { backend: 'webgpu' });
  const c = cd === null ? null : tensor(cd, addend === 'row' ? [n] : [m, n], { backend: 'webgpu' });
  const y = matmulAdd(a, b, c, { transposeA: tA, transposeB: tB, alpha });
  expect(y.shape).toEqual([m, n]);
  const label = `${variant} ${m}x${k}x${n} tA ${tA} tB ${tB} ${addend} alpha ${alpha}`;
  expectClose(await y.data(), reference(ad, bd, cd, m, k, n, tA, tB, alpha), { rtol: 1e-4, atol: 1e-5 * Math.sqrt(k) + 1e-6, label });
  for (const t of [a, b, c, y]) t?.dispose();
}

const CASES: { variant: MatmulVariant; sizes: [number, number, number][] }[] = [
  { variant: 'tile', sizes: [[36, 48, 44], [33, 29, 41]] },
  { variant: 'smallk', sizes: [[36, 8, 44], [37, 5, 19]] },
  // Aligned only: split-k's guarded shaders take minutes to compile cold on lavapipe.
  { variant: 'splitk', sizes: [[64, 512, 8]] },
  { variant: 'simple', sizes: [[33, 29, 41]] },
  { variant: 'shared', sizes: [[72, 40, 68], [33, 29, 41]] },
];

describe('matmulAdd on the webgpu matmul variants', () => {
  for (const { variant, sizes } of CASES) {
    // Generous timeout: each epilogue is a new shader per layout (seconds each on lavapipe).
    it(`${variant}: scale only, bias row and full addend`, { timeout: 600_000 }, async () => {
      for (const size of sizes) {
        await check(variant, size, false, false, 'row', 1);
        await check(variant, size, false, true, 'full', 0.37);
        await check(variant, size, true, false, 'none', -1.5);
      }
    });
  }
});

describe('matmulAdd errors', () => {
  it('names a wrong addend shape, a dtype mismatch and a non-finite alpha', () => {
    const a = tensor(randomArray(6, 1), [2, 3], { backend: 'webgpu' });
    const b = tensor(randomArray(12, 2), [3, 4], { backend: 'webgpu' });
    const wrong = tensor(randomArray(3, 3), [3], { backend: 'webgpu' });
    const ints = tensor(Int32Array.from([1, 2, 3, 4]), [4], { dtype: 'i32', backend: 'webgpu' });
    try {
      expect(() => matmulAdd(a, b, wrong)).toThrow(ShapeError);
      expect(() => matmulAdd(a, b, wrong)).toThrow(/c \[3\] must be \[4\] \(a bias row\) or the product's shape \[2,4\]/);
      expect(() => matmulAdd(a, b, ints)).toThrow(DTypeError);
      expect(() => matmulAdd(a, b, null, { alpha: Number.NaN })).toThrow(/alpha must be a finite number/);
    } finally {
      for (const t of [a, b, wrong, ints]) t.dispose();
    }
  });
});
