import type { BackendName } from './backend.js';
import { registerGradientsAndComposites } from './autograd/register-gradients.js';
import { CpuBackend } from './backends/cpu/cpu-backend.js';
import { registerCpuKernels } from './backends/cpu/register.js';
import { registerSharedKernels } from './backends/shared-kernels.js';
import { createWebGpuBackend, type WebGpuInitOptions } from './backends/webgpu/create.js';
import type { WebGpuBackend } from './backends/webgpu/webgpu-backend.js';
import { engine } from './engine.js';
import { MetaBackend, registerMetaKernels } from './backends/meta/meta-backend.js';

/** Options of {@link init}. */
export interface InitOptions extends WebGpuInitOptions {
  /** Backend to make the default: 'webgpu' (default), the 'cpu' reference, or 'meta' (shapes only). */
  backend?: BackendName;
}

/**
 * Initialises the runtime: registers kernels and gradients and creates the backend.
 * In Node, WebGPU comes from Dawn (the `webgpu` package); in a browser, from
 * `navigator.gpu`. Throws `NoAdapterError` when no adapter exists. Calling it again
 * re-creates the backend (e.g. after `DeviceLostError`).
 * @example await init();                     // webgpu
 * @example await init({ backend: 'cpu' });   // reference backend
 */
export async function init(options: InitOptions = {}): Promise<void> {
  const name = options.backend ?? 'webgpu';
  registerGradientsAndComposites();
  registerCpuKernels();
  registerSharedKernels('cpu');
  if (!engine.hasBackend('cpu')) engine.registerBackend(new CpuBackend(), name === 'cpu');
  if (!engine.hasBackend('meta')) {
    registerMetaKernels();
    registerSharedKernels('meta');
    engine.registerBackend(new MetaBackend(), false);
  }
  if (name === 'cpu' || name === 'meta') {
    engine.setDefaultBackend(name);
    return;
  }
  registerSharedKernels('webgpu');
  const backend = await createWebGpuBackend(options);
  engine.registerBackend(backend, true);
}

/**
 * Debug mode of the webgpu backend: every dispatch is submitted on its own in its own
 * error scopes, so a validation error names the op (kernel) that caused it instead of
 * the ops of its batch. Slow; for finding a failing kernel. Same as `init({ debug })`.
 * No effect before `init()` created the webgpu backend, or on cpu.
 */
export function setDebug(on: boolean): void {
  if (!engine.hasBackend('webgpu')) return;
  const b = engine.getBackend('webgpu');
  if ('debug' in b) {
    b.flush();
    (b as WebGpuBackend).debug = on;
  }
}

/** Makes an initialised backend the default for new tensors. */
export function setBackend(name: BackendName): void {
  engine.setDefaultBackend(name);
}

/** Name of the current default backend. */
export function getBackendName(): BackendName {
  return engine.getBackend().name;
}

/** Submits pending device work without waiting. */
export function flush(): void {
  engine.getBackend().flush();
}

/** Waits for all submitted device work to finish. */
export async function sync(name?: BackendName): Promise<void> {
  const b = engine.getBackend(name);
  b.flush();
  await b.sync();
}
