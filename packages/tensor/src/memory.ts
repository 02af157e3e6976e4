import type { Backend, BackendName } from './backend.js';
import { engine, type MemoryInfo } from './engine.js';

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
  const b = engine.getBackend(backend) as Backend & { resetPeak?: () => void };
  b.resetPeak?.();
}

/** The backend object (default: the current one), for capabilities and kernels. */
export function getBackend(name?: BackendName): Backend {
  return engine.getBackend(name);
}
