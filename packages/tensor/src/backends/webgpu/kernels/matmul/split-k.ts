import type { Uniforms } from '../../wgsl.js';
import { type MatmulLayout, batchOffsets, layoutKey, matmulBindings, matmulHelpers, uniformBinding } from './wgsl.js';

/** Threads of one split-k workgroup (they share the k range of 4 output rows). */
export const SPLIT_K_WG = 64;

/** Most output columns the split-k variant handles (its accumulators live in registers). */
export const SPLIT_K_MAX_N = 8;

/** Workgroup memory of the split-k kernel for `n` output columns (one `mat4x4` per thread and column group). */
export function splitKStorageBytes(n: number): number {
  return SPLIT_K_WG * Math.ceil(n / 4) * 64;
}

/**
 * Split-k matmul for skinny outputs (`n <= 8`, long k): `[m, k] x [k, r]` of a LoRA down
 * projection. One workgroup owns 4 output rows; its threads stride over k in 4-steps,
 * each accumulating 4 x n partial sums in registers, then a shared-memory tree reduction
 * adds the 64 partials. `groups` = ceil(n / 4) column groups of 4. Dispatch: x (and y
 * past 65535) = row blocks, z = batch.
 */
export function splitKSource(l: MatmulLayout, u: Uniforms, groups: number): { key: string; source: () => string } {
  const key = `matmul/splitk/g${groups}/${layoutKey(l)}`;
  const g = Array.from({ length: groups }, (_, i) => i);
  const source = () => `${matmulBindings(l)}
${u.declaration(uniformBinding(l))}
${matmulHelpers(l)}
var<workgroup> red: array<mat4x4<f32>, ${SPLIT_K_WG * groups}>;
@compute @workgroup_size(${SPLIT_K_WG}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tid = lid.x;
  let r0 = (wid.x + wid.y * nwg.x) * 4u;
  let t = wid.z + u.b0;
  ${batchOffsets(l.batchRank, 't')}
  ${g.map((i) => `var acc${i} = mat4x4<f32>();`).join('\n  ')}
  if (r0 < u.m) {
    for (var p = tid * 4u; p < u.k; p += ${4 * SPLIT_K_WG}u) {
      let am = aTile(aOff, r0, p);
      ${g.map((i) => `acc${i} = acc${i} + bTile(bOff, p, ${4 * i}u) * am;`).join('\n      ')}
    }
  }
  ${g.map((i) => `red[tid * ${groups}u + ${i}u] = acc${i};`).join('\n  ')}
  workgroupBarrier();
  for (var s = ${SPLIT_K_WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) {
      ${g.map((i) => `red[tid * ${groups}u + ${i}u] = red[tid * ${groups}u + ${i}u] + red[(tid + s) * ${groups}u + ${i}u];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  if (tid < 4u && r0 < u.m) {
    ${g.map((i) => `store4(cOff, r0 + tid, ${4 * i}u, red[${i}u][tid]);`).join('\n    ')}
  }
}`;
  return { key, source };
}
