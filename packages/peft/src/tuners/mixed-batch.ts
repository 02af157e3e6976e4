/**
 * Mixed-adapter batches: PEFT's per-sample `adapter_names` (PEFT 0.21,
 * `LoraLayer._mixed_batch_forward`). Row `i` of a batch runs with adapter `names[i]`, or
 * with the base model alone for {@link BASE_ADAPTER} (`"__base__"`); each layer runs an
 * adapter on the rows that name it (gathered along the batch axis) and adds its output
 * back into those rows. As in PEFT it is inference-time batching: training mode, merged
 * adapters and DoRA are refused with PEFT's reasons, and only LoRA layers (and modules to
 * save) take part.
 */
import { type Tensor, ShapeError, gather, reshape, scatterAdd, tensor } from '@webpeft/tensor';

/** The name that means "no adapter" in a mixed batch (PEFT's `"__base__"`). */
export const BASE_ADAPTER = '__base__';

/** A layer that can run a mixed-adapter batch (LoRA layers, modules to save). */
export interface MixedBatchLayer {
  /** Per-sample adapter names for the forwards to come, or null to go back to the active adapters. */
  mixedAdapterNames: readonly string[] | null;
}

/** Rows of each distinct name, in order of first appearance: `['a', 'b', 'a'] -> a: [0, 2], b: [1]`. */
export function rowsByAdapter(names: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  names.forEach((n, i) => {
    const rows = out.get(n);
    if (rows) rows.push(i);
    else out.set(n, [i]);
  });
  return out;
}

/**
 * PEFT's per-layer checks: one name per sample, no merged adapter, not in training mode.
 * `layer` names the module in the error.
 */
export function checkMixedBatch(layer: string, x: Tensor, names: readonly string[], state: { merged: boolean; training: boolean }): void {
  if (x.rank === 0 || x.shape[0] !== names.length) {
    throw new ShapeError(`${layer}: length of adapterNames should be the same as the number of inputs, but got ${names.length} and ${x.rank === 0 ? 'a scalar' : x.shape[0]} respectively`);
  }
  if (state.training) throw new Error(`${layer}: cannot pass adapterNames when the model is in training mode (mixed-adapter batches are for inference, as in PEFT); call eval() first`);
  if (state.merged) throw new Error(`${layer}: cannot pass adapterNames when there are merged adapters, please call unmerge() first`);
}

/** `rows` as an i32 index tensor `[k]` on `x`'s backend (inside a tidy scope). */
export function rowIndex(rows: readonly number[], x: Tensor): Tensor {
  return tensor(Int32Array.from(rows), [rows.length], { dtype: 'i32', backend: x.backend.name });
}

/** Rows `idx [k]` of `x [B, ...rest]` -> `[k, ...rest]` (inside a tidy scope). */
export function takeRows(x: Tensor, idx: Tensor): Tensor {
  const [b, ...rest] = x.shape;
  if (idx.shape[0] === b) return x;
  return reshape(gather(reshape(x, [b, -1]), idx), [idx.shape[0], ...rest]);
}

/** `rows [k, ...rest]` placed at batch rows `idx [k]` of zeros `[batch, ...rest]` (inside a tidy scope). */
export function placeRows(rows: Tensor, idx: Tensor, batch: number): Tensor {
  const [k, ...rest] = rows.shape;
  if (k === batch) return rows;
  return reshape(scatterAdd(reshape(rows, [k, -1]), idx, batch), [batch, ...rest]);
}

/**
 * The per-sample names in a forward's input (`adapterNames`), or undefined when absent.
 * PEFT's snake-case `adapter_names` is refused by name rather than ignored.
 */
export function adapterNamesOf(owner: string, input: unknown): readonly string[] | undefined {
  if (input === null || typeof input !== 'object') return undefined;
  if ('adapter_names' in input) throw new Error(`${owner}.forward: 'adapter_names' is PEFT's Python name; pass adapterNames (one adapter name or '${BASE_ADAPTER}' per sample)`);
  if (!('adapterNames' in input)) return undefined;
  const names = input.adapterNames;
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) throw new TypeError(`${owner}.forward: adapterNames must be an array of adapter names, one per sample`);
  return names as string[];
}
