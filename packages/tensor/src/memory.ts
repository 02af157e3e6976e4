import type { Backend, BackendName } from './backend.js';
import type { CpuBackend } from './backends/cpu/cpu-backend.js';
import type { MetaBackend } from './backends/meta/meta-backend.js';
import type { WebGpuBackend } from './backends/webgpu/webgpu-backend.js';
import { engine, type MemoryInfo } from './engine.js';

/** The backend classes, by name (what {@link getBackend} returns for each). */
export interface Backends {
  cpu: CpuBackend;
  webgpu: WebGpuBackend;
  meta: MetaBackend;
}

export type { MemoryInfo };

/**
 * Memory of a backend (default: the current one): live and peak bytes, live tensor and
 * buffer counts, pooled bytes, and bytes per tag (weights, grads, optimizer,
 * activations, quant, other).
 */
export function memory(backend?: BackendName): MemoryInfo {
  return engine.memory(backend);
}

/** Starts a new peak measurement at the current live bytes. */
export function resetPeakMemory(backend?: BackendName): void {
  engine.getBackend(backend).resetPeak();
}

/**
 * The backend object (default: the current one): its capabilities, memory and, for a
 * named backend, its own class (`getBackend('webgpu').limits`, `.totalDispatches`).
 */
export function getBackend(): Backend;
export function getBackend<B extends BackendName>(name: B): Backends[B];
export function getBackend(name?: BackendName): Backend {
  return engine.getBackend(name);
}
