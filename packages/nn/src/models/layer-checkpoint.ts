import { type Tensor, checkpoint } from '@webpeft/tensor';
import { type AttentionContext, disposeContext } from '../attention/context.js';

/**
 * Whether a forward pass checkpoints its decoder layers: enabled on the model, in
 * training mode, with grad recording on (generation and evaluation never recompute).
 * With a KV cache it disposes `ctx` and throws (the recomputation would extend the
 * cache again), before any layer runs.
 */
export function checkpointingActive(name: string, enabled: boolean, training: boolean, gradEnabled: boolean, ctx: AttentionContext): boolean {
  if (!(enabled && training && gradEnabled)) return false;
  if (ctx.cache) {
    disposeContext(ctx);
    throw new Error(cacheMessage(name));
  }
  return true;
}

function cacheMessage(name: string): string {
  return `${name}: gradient checkpointing recomputes each decoder layer in backward and cannot use a KV cache; in training pass useCache: false and no pastKeyValues (or call eval() or gradientCheckpointingDisable())`;
}

/**
 * Runs decoder layer `layerIdx` under `checkpoint()` (gradient checkpointing): only its
 * input `x` `[B, T, D]` and the per-pass tensors it reads (mask, positions, `tables`
 * such as RoPE's cos/sin, this layer's prefix keys/values) are kept for backward,
 * which recomputes the layer. Those tensors are passed as the checkpoint's inputs, not
 * captured: the caller disposes them before backward, and a trainable prefix needs its
 * gradient to flow. `forward` is the layer's own forward. `[B, T, D] -> [B, T, D]`.
 */
export function checkpointedLayer(
  name: string,
  layerIdx: number,
  x: Tensor,
  ctx: AttentionContext,
  tables: readonly Tensor[],
  forward: (x: Tensor, ctx: AttentionContext, tables: readonly Tensor[]) => Tensor,
): Tensor {
  // The recomputation would extend (or read a later state of) the cache again.
  if (ctx.cache) throw new Error(cacheMessage(name));
  const prefix = ctx.prefix?.[layerIdx] ?? null;
  const inputs = [x, ctx.positions, ...tables];
  if (ctx.bias) inputs.push(ctx.bias);
  if (prefix) inputs.push(prefix.key, prefix.value);
  const nt = tables.length;
  return checkpoint(
    (ins) => {
      let i = 2 + nt;
      const bias = ctx.bias ? ins[i++] : null;
      const layerPrefix = prefix ? { key: ins[i++], value: ins[i++] } : null;
      const kept: AttentionContext = {
        ...ctx,
        positions: ins[1],
        bias,
        prefix: ctx.prefix && layerPrefix ? ctx.prefix.map((p, l) => (l === layerIdx ? layerPrefix : p)) : ctx.prefix,
      };
      return forward(ins[0], kept, ins.slice(2, 2 + nt));
    },
    inputs,
    { name: `${name} layer ${layerIdx}` },
  );
}
