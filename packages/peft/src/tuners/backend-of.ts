import type { Module } from '@webpeft/nn';
import { type BackendName, getRngState, setRngState } from '@webpeft/tensor';

/** Depth of {@link planOnMeta} calls in progress. */
let planning = 0;

/**
 * The backend holding `m`'s weights (so adapters of a meta model are meta too), or
 * undefined for the default. Inside {@link planOnMeta} it is always `'meta'`.
 */
export function backendOf(m: Module): BackendName | undefined {
  if (planning > 0) return 'meta';
  const p = m.parameters()[0] ?? m.namedBuffers()[0]?.[1];
  return p ? p.backend.name : undefined;
}

/**
 * Runs `fn` with every adapter tensor that layers and encoders create (through
 * {@link backendOf}) on the `meta` backend: shapes without storage. Loaders use it to
 * learn the shapes an adapter would have (from its config and the model) and check
 * them against the weight file before anything real is allocated; a rank of 10^7 costs
 * nothing here. A method whose initialisation computes with ops the meta backend has
 * no kernel for (a user's method may) fails there; `fn` then runs once more on the real
 * backends, and must free what it made. The random stream is restored after, so
 * planning leaves no trace.
 */
export function planOnMeta<T>(fn: () => T): T {
  const rng = getRngState();
  try {
    planning++;
    try {
      return fn();
    } finally {
      planning--;
      setRngState(rng);
    }
  } catch {
    // Whatever the meta run tripped on, the real run either reproduces (and reports) or passes.
    try {
      return fn();
    } finally {
      setRngState(rng);
    }
  }
}
