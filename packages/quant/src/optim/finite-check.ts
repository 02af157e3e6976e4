/** Which gradients hold a NaN or infinity, checked before any parameter changes. */
import { type Tensor, Uniforms, type WebGpuBackend, cpuData, elementMain, grid, program, runKernel, storageBindings, tensor, withMemoryTag } from '@webpeft/tensor';

/**
 * Indices into `grads` of the gradients with a non-finite element: a host loop on cpu,
 * on webgpu one flag dispatch per gradient and one read-back. Exponent bits are tested
 * because WGSL may assume finite floats in comparisons.
 */
export async function nonFiniteGrads(grads: readonly Tensor[]): Promise<number[]> {
  const bad: number[] = [];
  const gpu: number[] = [];
  grads.forEach((g, i) => {
    if (g.backend.name !== 'webgpu') {
      const a = cpuData(g) as Float32Array | Float64Array;
      for (let j = 0; j < a.length; j++) {
        if (!Number.isFinite(a[j])) {
          bad.push(i);
          break;
        }
      }
    } else gpu.push(i);
  });
  if (gpu.length === 0) return bad;
  const backend = grads[gpu[0]].backend as WebGpuBackend;
  const flags = withMemoryTag('optimizer', () => tensor(new Uint32Array(gpu.length), [gpu.length], { dtype: 'u32', backend: 'webgpu' }));
  gpu.forEach((gi, slot) => {
    const g = grads[gi];
    const u = new Uniforms().u32('size', g.size).u32('slot', slot);
    const prog = program('quant/optim/finite', 1, 1, () => `
${storageBindings([['gs', 'f32']], [['flags', 'atomic<u32>']])}
${u.declaration(2)}
${elementMain(256, 'u.size')}
  if ((bitcast<u32>(gs[i]) & 0x7f800000u) == 0x7f800000u) { atomicOr(&flags[u.slot], 1u); }
}`);
    runKernel(backend, prog, [g], [flags], u, grid(g.size, 256));
  });
  const values = (await flags.data()) as Uint32Array;
  flags.dispose();
  gpu.forEach((gi, slot) => {
    if (values[slot] !== 0) bad.push(gi);
  });
  return bad.sort((a, b) => a - b);
}
