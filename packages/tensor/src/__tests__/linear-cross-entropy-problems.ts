/** Inputs shared by the linear + cross-entropy test files. */
import { type HostInput, ints } from './conformance.js';

/** A linear + cross-entropy problem on the host: hidden `[N, D]`, weight `[V, D]`, labels `[N]`, optional bias `[V]`. */
export interface Problem {
  hidden: HostInput;
  weight: HostInput;
  labels: HostInput;
  bias?: HostInput;
}

/** `count` labels in [0, v) with the rows at `ignored` set to -100. */
export function labelsWith(count: number, v: number, seed: number, ignored: readonly number[]): HostInput {
  const l = ints([count], seed, 0, v);
  for (const i of ignored) l.data[i] = -100;
  return l;
}
