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
export function splitKSource(l: MatmulLayout, u: Uniforms, groups: number, subgroups = false): { key: string; source: () => string } {
  const key = `matmul/splitk${subgroups ? '-sg' : ''}/g${groups}/${layoutKey(l)}`;
  const g = Array.from({ length: groups }, (_, i) => i);
  const reduce = subgroups ? subgroupReduce(g, groups) : treeReduce(g, groups);
  const source = () => `${subgroups ? 'enable subgroups;\n' : ''}${matmulBindings(l)}
${u.declaration(uniformBinding(l))}
${matmulHelpers(l)}
var<workgroup> red: array<mat4x4<f32>, ${SPLIT_K_WG * groups}>;
@compute @workgroup_size(${SPLIT_K_WG}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>${subgroups ? ', @builtin(subgroup_invocation_id) sgLane: u32' : ''}) {
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
  ${reduce}
}`;
  return { key, source };
}

/** Tree reduction of the 64 partials in workgroup memory (log2(64) barriers); `red[g]` holds the sums after. */
function treeReduce(g: number[], groups: number): string {
  return `${g.map((i) => `red[tid * ${groups}u + ${i}u] = acc${i};`).join('\n  ')}
  workgroupBarrier();
  for (var s = ${SPLIT_K_WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) {
      ${g.map((i) => `red[tid * ${groups}u + ${i}u] = red[tid * ${groups}u + ${i}u] + red[(tid + s) * ${groups}u + ${i}u];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  if (tid < 4u && r0 < u.m) {
    ${g.map((i) => `store4(cOff, r0 + tid, ${4 * i}u, red[${i}u][tid]);`).join('\n    ')}
  }`;
}

/**
 * `subgroupAdd` sums each subgroup's partials in registers; the first lane of every
 * subgroup writes the subgroup's sum into its own slot, every other thread a zero
 * (so nothing depends on how lanes map to subgroups), and each of the 4 storing
 * threads adds its output row over the slots: one barrier instead of log2(64).
 */
function subgroupReduce(g: number[], groups: number): string {
  const cols = [0, 1, 2, 3];
  return `${g.flatMap((i) => cols.map((c) => `let sg${i}_${c} = subgroupAdd(acc${i}[${c}]);`)).join('\n  ')}
  let lead = sgLane == 0u;
  ${g.map((i) => `red[tid * ${groups}u + ${i}u] = mat4x4<f32>(${cols.map((c) => `select(vec4<f32>(0.0), sg${i}_${c}, lead)`).join(', ')});`).join('\n  ')}
  workgroupBarrier();
  if (tid < 4u && r0 < u.m) {
    ${g.map((i) => `var sum${i} = vec4<f32>(0.0);`).join('\n    ')}
    for (var s = 0u; s < ${SPLIT_K_WG}u; s++) {
      ${g.map((i) => `sum${i} = sum${i} + red[s * ${groups}u + ${i}u][tid];`).join('\n      ')}
    }
    ${g.map((i) => `store4(cOff, r0 + tid, ${4 * i}u, sum${i});`).join('\n    ')}
  }`;
}
