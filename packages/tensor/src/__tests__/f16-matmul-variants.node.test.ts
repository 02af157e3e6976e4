/**
 * The f16 matmul in every variant the dispatcher can pick (forced here, so split-k and
 * the simple kernel are covered on a software adapter too) against the cpu f16
 * reference, within 1 f16 ulp (f32 accumulation in a different order than the cpu's
 * float64 sum; both round once to f16). Node only, like `matmul-kernels.node.test.ts`:
 * SwiftShader compiles these shaders for minutes.
 */
import { getBackend, matmul, tensor } from '@webpeft/tensor';
import { initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, it } from 'vitest';
import { type MatmulVariant, setMatmulVariantOverride } from '../backends/webgpu/kernels/matmul.js';
import { expectUlpsWithin, f16Bits, webgpuHasF16 } from './f16-helpers.js';

beforeAll(async () => {
  await initBackends();
});

let seed = 9100;

async function check(m: number, k: number, n: number, transposeB: boolean): Promise<void> {
  const a = randomArray(m * k, seed++, -2, 2);
  const b = randomArray(k * n, seed++, -2, 2);
  const bShape = transposeB ? [n, k] : [k, n];
  const out: Uint16Array[] = [];
  for (const backend of ['cpu', 'webgpu'] as const) {
    const ta = tensor(a, [m, k], { backend, dtype: 'f16' });
    const tb = tensor(b, bShape, { backend, dtype: 'f16' });
    const y = matmul(ta, tb, { transposeB });
    out.push(await f16Bits(y));
    for (const t of [ta, tb, y]) t.dispose();
  }
  expectUlpsWithin(out[1], out[0], 1, `f16 matmul ${m}x${k}x${n} transposeB=${transposeB}`);
}

const CASES: { variant: MatmulVariant; sizes: [number, number, number][]; layouts: boolean[] }[] = [
  { variant: 'tile', sizes: [[16, 24, 32], [9, 30, 7]], layouts: [false, true] },
  { variant: 'smallk', sizes: [[20, 8, 12], [5, 3, 9]], layouts: [false, true] },
  // One aligned LoRA layout (x A^T): each split-k shader takes about a minute to compile
  // cold on lavapipe; the f32 suite covers its other layouts, which share this f16 code.
  { variant: 'splitk', sizes: [[12, 300, 8]], layouts: [true] },
  { variant: 'simple', sizes: [[7, 13, 5], [16, 16, 16]], layouts: [false, true] },
  // Workgroup-memory tiles: f16 loads widened into f32 tiles, f32 accumulation.
  { variant: 'shared', sizes: [[68, 40, 72], [9, 30, 7]], layouts: [false, true] },
  { variant: 'subgroup', sizes: [[12, 300, 8]], layouts: [true] },
];

describe('f16 matmul variants', () => {
  for (const { variant, sizes, layouts } of CASES) {
    it(`${variant}`, async () => {
      // Without shader-f16 there is no f16 kernel to compare (f16-kernels.test.ts checks the refusal).
      if (!webgpuHasF16()) return;
      if (variant === 'subgroup' && !getBackend('webgpu').capabilities.subgroups) return;
      setMatmulVariantOverride(variant);
      try {
        for (const [m, k, n] of sizes) for (const tB of layouts) await check(m, k, n, tB);
      } finally {
        setMatmulVariantOverride(null);
      }
    }, 600_000);
  }
});
