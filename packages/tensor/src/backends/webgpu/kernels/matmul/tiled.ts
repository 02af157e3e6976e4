import type { Uniforms } from '../../wgsl.js';
import { type MatmulLayout, batchOffsets, layoutKey, matmulBindings, matmulHelpers } from './wgsl.js';

/** Threads per workgroup along x (columns) and y (rows); each thread owns a 4x4 block. */
export const TILE_WG_X = 8;
export const TILE_WG_Y = 8;

/**
 * Register-tiled matmul: each thread accumulates a 4x4 output block in a `mat4x4`
 * (16 accumulators, 64 FMAs per 4-step of k) reading A and B straight from storage, with
 * no workgroup memory (software rasterisers such as lavapipe and SwiftShader pay heavily
 * for barriers, and GPUs' caches serve the 8x8-thread block's reuse well). Dispatch:
 * x = column blocks / 8, y = row blocks / 8, z = batch.
 *
 * With `unrollK` (a multiple of 4, at least k) the k loop is unrolled: the small-k
 * variant for `[m, r] x [r, n]` with a LoRA rank r, which is bound by output writes.
 */
export function tiledSource(l: MatmulLayout, u: Uniforms, unrollK?: number): { key: string; source: () => string } {
  const key = `matmul/tile4x4${unrollK === undefined ? '' : `/k${unrollK}`}/${layoutKey(l)}`;
  const loop =
    unrollK === undefined
      ? `for (var p = 0u; p < u.k; p += 4u) { acc = acc + bTile(bOff, p, c0) * aTile(aOff, r0, p); }`
      : Array.from({ length: unrollK / 4 }, (_, s) => `acc = acc + bTile(bOff, ${4 * s}u, c0) * aTile(aOff, r0, ${4 * s}u);`).join('\n  ');
  const source = () => `${matmulBindings(l)}
${u.declaration(3)}
${matmulHelpers(l)}
@compute @workgroup_size(${TILE_WG_X}, ${TILE_WG_Y}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let c0 = gid.x * 4u;
  let r0 = gid.y * 4u;
  if (r0 >= u.m || c0 >= u.n) { return; }
  let t = wid.z + u.b0;
  ${batchOffsets(l.batchRank, 't')}
  var acc = mat4x4<f32>();
  ${loop}
  store4(cOff, r0, c0, acc[0]);
  store4(cOff, r0 + 1u, c0, acc[1]);
  store4(cOff, r0 + 2u, c0, acc[2]);
  store4(cOff, r0 + 3u, c0, acc[3]);
}`;
  return { key, source };
}
