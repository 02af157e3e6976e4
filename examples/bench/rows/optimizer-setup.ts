/** Setup shared by the optimizer rows: a WebGPU backend, random parameters with gradients, step timing. */
import { type Tensor, getBackend, init, keep, randn, sync } from '@webpeft/tensor';

/** Initialises WebGPU unless the harness already did. */
export async function ensureWebGpu(): Promise<void> {
  try {
    getBackend('webgpu');
  } catch {
    await init({ backend: 'webgpu' });
  }
}

/** `count` parameters of `elements` each, with random values and random gradients (kept). */
export function makeParams(count: number, elements: number): Tensor[] {
  return Array.from({ length: count }, () => {
    const p = keep(randn([elements], { backend: 'webgpu' }));
    p.requiresGrad = true;
    p.grad = keep(randn([elements], { backend: 'webgpu' }));
    return p;
  });
}

/** Milliseconds per call of `step` over `timed` calls after `warmup`, waiting for the device each time. */
export async function timeSteps(step: () => Promise<unknown>, warmup: number, timed: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await step();
  await sync('webgpu');
  const t0 = performance.now();
  for (let i = 0; i < timed; i++) await step();
  await sync('webgpu');
  return (performance.now() - t0) / timed;
}
