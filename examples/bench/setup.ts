/**
 * One process, one Dawn adapter, two runtimes: our backend (through `init`) and
 * tfjs-backend-webgpu (through `navigator.gpu`, which tfjs reads when it is imported).
 */
import { init } from '@webpeft/tensor';
import { create, globals } from 'webgpu';
import type { BenchContext } from './table.ts';

process.env.XDG_RUNTIME_DIR ??= '/tmp';

/** Dawn's GPU object for tfjs: kept referenced for the life of the process (Dawn crashes if it is collected). */
let tfGpu: GPU | null = null;

/** Initialises both runtimes; tfjs is optional (its rows then show '-'). */
export async function setup(runs: number): Promise<BenchContext> {
  await init({ backend: 'webgpu' });
  tfGpu = create([]);
  // tfjs uses the GPUBufferUsage/GPUMapMode globals that browsers define.
  Object.assign(globalThis, globals);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: tfGpu, userAgent: 'node' }, configurable: true, writable: true });
  try {
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") returned false');
    const backend = tf.backend() as unknown as { ensureCommandEncoderReady(): void; endComputePassEncoder(): void; submitQueue(): void; device: GPUDevice };
    // What tfjs does before a readback, without the readback: close the pass, submit, wait.
    const tfSync = async () => {
      backend.ensureCommandEncoderReady();
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    };
    return { tf, tfSync, runs };
  } catch (e) {
    console.warn(`tfjs-backend-webgpu unavailable, its columns stay empty: ${(e as Error).message}`);
    return { tf: null, tfSync: async () => {}, runs };
  }
}
