import { engine } from '../../../engine.js';
import { registerKernel } from '../../../registry.js';
import { broadcastStrides } from '../../../shape.js';
import { matmulShapes } from '../../../ops/matmul-shapes.js';
import { MAX_WORKGROUPS_PER_DIM } from '../constants.js';
import { program, runKernel } from '../run-kernel.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { Uniforms, checkRank, rowGrid } from '../wgsl.js';
import { SPLIT_K_MAX_N, splitKSource } from './matmul/split-k.js';
import { type TileShape, tiledSource } from './matmul/tiled.js';
import type { MatmulLayout } from './matmul/wgsl.js';

/** Largest k handled by the unrolled small-k variant. */
const SMALL_K_MAX = 16;
/** Shortest k worth splitting across a workgroup for skinny outputs. */
const SPLIT_K_MIN_K = 256;

/** Which kernel serves a problem size: decided on the host from the shape class. */
export type MatmulVariant = 'tile' | 'smallk' | 'splitk';

/**
 * Variant choice: `splitk` for skinny outputs with a long reduction (`n <= 8`,
 * `k >= 256`: too few output blocks to fill a GPU), `smallk` for `k <= 16` (the
 * unrolled loop of an output-bound product), else the 4x4 register tile.
 */
export function chooseMatmulVariant(m: number, k: number, n: number): MatmulVariant {
  if ((globalThis as any).__MMV) return (globalThis as any).__MMV;
  if (n <= SPLIT_K_MAX_N && k >= SPLIT_K_MIN_K && m >= 4) return 'splitk';
  if (k <= SMALL_K_MAX) return 'smallk';
  return 'tile';
}

/** Registers the webgpu matmul kernel (variants chosen per shape class). */
export function registerWebGpuMatmulKernels(): void {
  registerKernel('MatMul', 'webgpu', (inputs, { transposeA, transposeB }, backend) => {
    const [a, b] = inputs;
    const { m, k, n, batchShape } = matmulShapes(a.shape, b.shape, transposeA, transposeB);
    checkRank('matmul', [...batchShape, m, n]);
    const out = engine.makeTensor(backend, [...batchShape, m, n], 'f32', 'matmul');
    const batch = batchShape.reduce((p, d) => p * d, 1);
    if (out.size === 0) return out;
    const layout: MatmulLayout = {
      transposeA,
      transposeB,
      aligned: m % 4 === 0 && n % 4 === 0 && k % 4 === 0,
      batchRank: batchShape.length,
    };
    const variant = chooseMatmulVariant(m, k, n);
    // Batches beyond the per-dimension workgroup limit go in several dispatches (offset b0).
    for (let b0 = 0; b0 < batch; b0 += MAX_WORKGROUPS_PER_DIM) {
      const chunk = Math.min(MAX_WORKGROUPS_PER_DIM, batch - b0);
      const u = new Uniforms()
        .arr('bshape', batchShape)
        .arr('sa', broadcastStrides(a.shape.slice(0, -2), batchShape))
        .arr('sb', broadcastStrides(b.shape.slice(0, -2), batchShape))
        .u32('m', m)
        .u32('k', k)
        .u32('n', n)
        .u32('b0', b0);
      let spec: { key: string; source: () => string };
      let wg: [number, number, number];
      if (variant === 'splitk') {
        spec = splitKSource(layout, u, Math.ceil(n / 4));
        const [x, y] = rowGrid(Math.ceil(m / 4));
        wg = [x, y, chunk];
      } else {
        const g = globalThis as any;
        const ts: TileShape = { wgX: Number(g.__WGX ?? 8), wgY: Number(g.__WGY ?? 8), rows: Number(g.__ROWS ?? 4) as 4 | 8 };
        spec = tiledSource(layout, u, ts, variant === 'smallk' ? Math.ceil(k / 4) * 4 : undefined);
        wg = [Math.ceil(n / 4 / ts.wgX), Math.ceil(m / ts.rows / ts.wgY), chunk];
      }
      if (wg[0] > MAX_WORKGROUPS_PER_DIM || wg[1] > MAX_WORKGROUPS_PER_DIM) {
        throw new RangeError(`matmul: ${m}x${k} by ${k}x${n} needs ${wg[0]}x${wg[1]} workgroups, more than the WebGPU limit ${MAX_WORKGROUPS_PER_DIM} per dimension`);
      }
      runKernel(backend as WebGpuBackend, program(spec.key, 2, 1, spec.source), [a, b], [out], u, wg);
    }
    return out;
  });
}
