/**
 * Code tables as device tensors, shared per backend: every 4-bit layer reads the same
 * 16 (NF4/FP4) or 256 (dynamic map) floats, so they are uploaded once and kept.
 */
import { type Backend, type BackendName, type Tensor, getBackend, keep, tensor, withMemoryTag } from '@webpeft/tensor';
import { NF4_CODE, FP4_CODE, createDynamicMap } from './codebooks.js';

/** The signed 8-bit dynamic map (double quantization of absmax). */
export const DYNAMIC_SIGNED: Float32Array = createDynamicMap(true);
/** The unsigned 8-bit dynamic map. */
export const DYNAMIC_UNSIGNED: Float32Array = createDynamicMap(false);

const CANONICAL: readonly Float32Array[] = [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED];
const cache = new WeakMap<Backend, Map<Float32Array, Tensor>>();

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}

/**
 * A device tensor holding `table`. Canonical tables (NF4, FP4, the dynamic maps) come
 * from a per-backend cache and must not be disposed (`shared: true`); any other table
 * gets a fresh tensor tagged 'quant' that the caller owns.
 */
export function codeTensor(table: Float32Array, backend: BackendName): { tensor: Tensor; shared: boolean } {
  const canonical = CANONICAL.find((c) => sameBits(c, table));
  if (!canonical) return { tensor: withMemoryTag('quant', () => tensor(table, [table.length], { backend })), shared: false };
  const b = getBackend(backend);
  let perBackend = cache.get(b);
  if (!perBackend) cache.set(b, (perBackend = new Map<Float32Array, Tensor>()));
  let t = perBackend.get(canonical);
  if (!t || t.isDisposed) {
    t = keep(withMemoryTag('quant', () => tensor(canonical, [canonical.length], { backend })));
    perBackend.set(canonical, t);
  }
  return { tensor: t, shared: true };
}
