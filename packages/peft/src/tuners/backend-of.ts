import type { Module } from '@webpeft/nn';
import type { BackendName } from '@webpeft/tensor';

/** The backend holding `m`'s weights (so adapters of a meta model are meta too), or undefined for the default. */
export function backendOf(m: Module): BackendName | undefined {
  const p = m.parameters()[0] ?? m.namedBuffers()[0]?.[1];
  return p ? p.backend.name : undefined;
}
