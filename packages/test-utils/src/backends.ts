import { type BackendName, getBackend, init } from '@webpeft/tensor';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    requireWebGpu: boolean;
  }
}

let available: BackendName[] | null = null;

/**
 * Initialises cpu and (when an adapter exists) webgpu, leaving webgpu the default.
 * In CI (`requireWebGpu`) a missing adapter throws: WebGPU tests never skip silently.
 */
export async function initBackends(): Promise<BackendName[]> {
  if (available) return available;
  await init({ backend: 'cpu' });
  try {
    await init({ backend: 'webgpu' });
    available = ['cpu', 'webgpu'];
  } catch (e) {
    if (inject('requireWebGpu')) throw new Error(`WebGPU is required here (CI) but could not be initialised: ${(e as Error).message}`);
    console.warn(`WebGPU unavailable, running cpu only: ${(e as Error).message}`);
    available = ['cpu'];
  }
  return available;
}

/** Backends the conformance suites run on (after `initBackends`). */
export function backendsUnderTest(): BackendName[] {
  if (!available) throw new Error('call initBackends() in beforeAll first');
  return available;
}

/** The adapter description of the webgpu backend, for logs. */
export function webgpuDescription(): string {
  const info = getBackend('webgpu').adapterInfo;
  return info ? `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.trim() : 'unknown adapter';
}
