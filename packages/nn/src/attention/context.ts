import { type BackendName, type Tensor, arange, concat, expand } from '@webpeft/tensor';
import { KVCache, type LayerKeyValues } from './kv-cache.js';
import { attentionBias, prependKept } from './mask.js';
import type { AttnImplementation } from './scaled-dot-product.js';

/** What every attention layer of one forward pass shares (built once per pass). */
export interface AttentionContext {
  /** Additive mask `[B | 1, 1, T, L]`, or null when nothing is masked. */
  bias: Tensor | null;
  /** Cache read (and extended when `storeCache`), or null. */
  cache: KVCache | null;
  storeCache: boolean;
  /** Per-layer prefix keys/values `[B, H_kv, P, Dh]`, or null. */
  prefix: readonly LayerKeyValues[] | null;
  /** Position ids of the new tokens, i32 `[T]` or `[B, T]`. */
  positions: Tensor;
  /** How attention is computed (`'eager'` unless the model was set to `'fused'`). */
  implementation: AttnImplementation;
  /**
   * True when `bias` leaves the causal mask out (the fused attention applies it in its
   * kernel, so the mask read is only the padding part `[B, 1, 1 | T, L]`).
   */
  causal: boolean;
}

/** Inputs of {@link buildAttentionContext}. */
export interface ContextInput {
  batch: number;
  length: number;
  attentionMask?: Tensor;
  positionIds?: Tensor;
  pastKeyValues?: KVCache;
  useCache?: boolean;
  prefixKeyValues?: readonly LayerKeyValues[];
  numLayers: number;
  /** Dtype of the model's attention scores, which the mask is built in (default f32). */
  scoreDtype?: 'f32' | 'f16';
  /** The model's attention implementation (default `'eager'`). */
  attnImplementation?: AttnImplementation;
}

/**
 * Resolves cache, prefix, positions and mask of a forward pass. Key length
 * `L = P + past + T`; new tokens sit at positions `P + past ..` (Hugging Face counts a
 * prefix passed as past keys/values towards positions, so prefix tuning matches PEFT).
 */
export function buildAttentionContext(input: ContextInput, backend: BackendName): AttentionContext {
  const { batch, length } = input;
  const prefix = input.prefixKeyValues ?? null;
  const storeCache = input.useCache ?? input.pastKeyValues !== undefined;
  const cache = input.pastKeyValues ?? (storeCache ? new KVCache() : null);
  const past = cache?.length ?? 0;
  let p = 0;
  if (prefix) {
    if (prefix.length !== input.numLayers) throw new Error(`forward: prefixKeyValues has ${prefix.length} layers, the model has ${input.numLayers}`);
    if (past > 0) throw new Error('forward: prefixKeyValues with a non-empty pastKeyValues (the cache already holds the prefix from the first call)');
    p = prefix[0].key.shape[2];
  }
  const keys = p + past + length;
  let mask = input.attentionMask ?? null;
  let ownMask = false;
  if (mask && p > 0 && mask.rank === 2 && mask.shape[1] === past + length) {
    mask = prependKept(mask, p);
    ownMask = true;
  }
  if (mask && !((mask.rank === 2 || mask.rank === 3) && mask.shape[0] === batch)) {
    throw new Error(`forward: attentionMask [${mask.shape.join(', ')}] must be [${batch}, ${keys}] (prefix + past + new tokens) or [${batch}, ${length}, ${keys}] (per query)`);
  }
  const implementation = input.attnImplementation ?? 'eager';
  const causal = implementation === 'fused';
  const bias = attentionBias(length, keys, mask, backend, input.scoreDtype, !causal);
  if (ownMask) mask!.dispose();
  let positions: Tensor;
  if (input.positionIds) {
    const pid = input.positionIds;
    if (pid.rank !== 2 || pid.shape[0] !== batch || pid.shape[1] !== length) {
      throw new Error(`forward: positionIds [${pid.shape.join(', ')}] must be [${batch}, ${length}]`);
    }
    positions = concat([pid], 0);
  } else positions = arange(p + past, p + past + length, 1, { dtype: 'i32', backend });
  return { bias, cache, storeCache, prefix, positions, implementation, causal };
}

/**
 * The keys and values layer `layer` attends to: prefix, then cached, then the new
 * `k`, `v` `[B, H_kv, T, Dh]`, along the sequence axis. Extends the cache when the
 * context stores it.
 */
export function extendKeyValues(ctx: AttentionContext, layer: number, k: Tensor, v: Tensor): LayerKeyValues {
  let key = k;
  let value = v;
  const temps: Tensor[] = [];
  const pre = ctx.prefix?.[layer];
  if (pre) {
    const shape = [k.shape[0], k.shape[1], pre.key.shape[2], k.shape[3]];
    const pk = pre.key.shape[0] === shape[0] ? pre.key : expand(pre.key, shape);
    const pv = pre.value.shape[0] === shape[0] ? pre.value : expand(pre.value, shape);
    if (pk !== pre.key) temps.push(pk, pv);
    key = concat([pk, k], 2);
    value = concat([pv, v], 2);
    temps.push(key, value);
  }
  if (ctx.cache && ctx.storeCache) {
    const full = ctx.cache.update(layer, key, value);
    for (const t of temps) t.dispose();
    return full;
  }
  const past = ctx.cache?.get(layer);
  if (past) {
    const out = { key: concat([past.key, key], 2), value: concat([past.value, value], 2) };
    for (const t of temps) t.dispose();
    return out;
  }
  // Temps (if any) are the returned tensors themselves.
  return { key, value };
}

/** The dtype attention scores of a model with embedding weight `w` have: f16 for an f16 model, else f32. */
export function scoreDtypeOf(w: Tensor): 'f32' | 'f16' {
  return w.dtype === 'f16' ? 'f16' : 'f32';
}

/** Disposes the per-pass tensors of a context (not the cache). */
export function disposeContext(ctx: AttentionContext): void {
  ctx.bias?.dispose();
  ctx.positions.dispose();
}
