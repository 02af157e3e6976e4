import type { Uniforms } from '../../wgsl.js';
import { type MatmulLayout, batchOffsets, epilogueWgsl, layoutKey, matmulBindings, operandIndex, uniformBinding } from './wgsl.js';

/** Threads per workgroup of the simple kernel (8 x 8 outputs). */
export const SIMPLE_WG = 8;

/**
 * One output element per thread with a plain k loop. Slow, but its shader is tiny: it
 * serves unaligned shapes on SwiftShader, whose shader compiler spends more than a
 * minute on the guarded register-tile kernel. Dispatch: x = n / 8, y = m / 8, z = batch.
 */
export function simpleSource(l: MatmulLayout, u: Uniforms): { key: string; source: () => string } {
  const key = `matmul/simple/${layoutKey({ ...l, aligned: false })}`;
  const { aIdx, bIdx } = operandIndex(l);
  const source = () => `${matmulBindings({ ...l, aligned: false })}
${u.declaration(uniformBinding(l))}
@compute @workgroup_size(${SIMPLE_WG}, ${SIMPLE_WG}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (r >= u.m || c >= u.n) { return; }
  let t = wid.z + u.b0;
  ${batchOffsets(l.batchRank, 't')}
  var acc = 0.0;
  for (var p = 0u; p < u.k; p++) {
    acc = acc + ${l.half ? `f32(A[aOff + ${aIdx}]) * f32(B[bOff + ${bIdx}])` : `A[aOff + ${aIdx}] * B[bOff + ${bIdx}]`};
  }
  let v = ${epilogueWgsl({ ...l, aligned: false }, 'acc', 'cOff', 'r', 'c', false)};
  C[cOff + r * u.ldc + c] = ${l.half ? 'f16(v)' : 'v'};
}`;
  return { key, source };
}
