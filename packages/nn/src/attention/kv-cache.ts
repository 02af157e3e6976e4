import { type Tensor, concat, keep } from '@webpeft/tensor';

/** Keys and values of one layer: `[B, H_kv, L, Dh]` each. */
export interface LayerKeyValues {
  key: Tensor;
  value: Tensor;
}

/**
 * Per-layer keys and values of the tokens seen so far (Hugging Face's `DynamicCache`),
 * so generation runs each new token through the model once. The cache owns its tensors:
 * they are exempt from `tidy` scopes, replaced (and the old ones disposed) as the
 * sequence grows, and freed by `dispose()`.
 *
 * Shapes: `keys[i]`, `values[i]` are `[B, H_kv, L, Dh]`; `length` is `L`.
 * @example
 * const cache = new KVCache();
 * model.forward({ inputIds: prompt, pastKeyValues: cache });   // fills it
 * model.forward({ inputIds: next, pastKeyValues: cache });     // attends to the prompt
 * cache.dispose();
 */
export class KVCache {
  readonly keys: (Tensor | null)[] = [];
  readonly values: (Tensor | null)[] = [];

  /** Cached sequence length `L` (0 when empty). */
  get length(): number {
    const k = this.keys.find((t) => t);
    return k ? k.shape[2] : 0;
  }

  /** The cached keys and values of `layer`, or null. */
  get(layer: number): LayerKeyValues | null {
    const key = this.keys[layer];
    const value = this.values[layer];
    return key && value ? { key, value } : null;
  }

  /**
   * Appends `key`, `value` `[B, H_kv, T, Dh]` to `layer` along the sequence axis and
   * returns the full `[B, H_kv, L + T, Dh]` tensors (owned by the cache).
   */
  update(layer: number, key: Tensor, value: Tensor): LayerKeyValues {
    const prev = this.get(layer);
    if (prev && (prev.key.shape[0] !== key.shape[0] || prev.key.shape[1] !== key.shape[1] || prev.key.shape[3] !== key.shape[3])) {
      throw new Error(`KVCache.update: layer ${layer} holds [${prev.key.shape.join(', ')}], cannot append [${key.shape.join(', ')}]`);
    }
    const k = prev ? concat([prev.key, key], 2) : concat([key], 2);
    const v = prev ? concat([prev.value, value], 2) : concat([value], 2);
    keep(k);
    keep(v);
    prev?.key.dispose();
    prev?.value.dispose();
    this.keys[layer] = k;
    this.values[layer] = v;
    return { key: k, value: v };
  }

  /** Frees every cached tensor; the cache is empty afterwards. */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.length = 0;
    this.values.length = 0;
  }
}
