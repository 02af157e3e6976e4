/**
 * An optimizer state dict as named tensors plus JSON, the shape a checkpoint file takes
 * (e.g. safetensors for the tensors, a JSON file or the safetensors metadata for the
 * rest). Tensors are keyed by parameter name, so a checkpoint reads like the model's.
 */
import type { OptimizerStateDict, SavedBuffer, SavedGroup } from './types.js';

/** The JSON-able part of a flattened optimizer state. */
export interface FlatOptimizerMeta {
  optimizer: string;
  /** Hyperparameters, flat indices and names per group, as in the state dict. */
  paramGroups: SavedGroup[];
  /** Per parameter name with state: its update count and its buffer names (the tensors `<name>.<buffer>`). */
  params: Record<string, { step: number; buffers: string[] }>;
}

/** A state dict as tensors keyed `<parameter name>.<buffer name>` and JSON metadata. */
export interface FlatOptimizerState {
  tensors: Record<string, SavedBuffer>;
  meta: FlatOptimizerMeta;
}

/**
 * Flattens a state dict into named tensors and JSON metadata (no copies: the typed
 * arrays are shared). Throws when two parameters share a name (names key the tensors).
 * @example
 * const { tensors, meta } = flattenOptimizerState(await opt.stateDict());
 * // tensors['model.layers.0.self_attn.q_proj.lora_A.default.weight.expAvg']: f32 [r, in]
 */
export function flattenOptimizerState(sd: OptimizerStateDict): FlatOptimizerState {
  const nameOf = new Map<number, string>();
  for (const g of sd.paramGroups) g.params.forEach((flat, j) => nameOf.set(flat, g.names[j]));
  const tensors: Record<string, SavedBuffer> = {};
  const params: FlatOptimizerMeta['params'] = {};
  for (const [key, st] of Object.entries(sd.state)) {
    const name = nameOf.get(Number(key));
    if (name === undefined) throw new Error(`flattenOptimizerState: state[${key}] belongs to no parameter of paramGroups`);
    if (params[name]) throw new Error(`flattenOptimizerState: two parameters are named '${name}'`);
    params[name] = { step: st.step, buffers: Object.keys(st.buffers) };
    for (const [b, buf] of Object.entries(st.buffers)) tensors[`${name}.${b}`] = buf;
  }
  return { tensors, meta: { optimizer: sd.optimizer, paramGroups: sd.paramGroups, params } };
}

/**
 * The inverse of {@link flattenOptimizerState}, checking that every tensor the metadata
 * lists is present and that no other tensor is (a typed error names the key). The
 * result is then checked in full by `Optimizer.loadStateDict`.
 * @example opt.loadStateDict(unflattenOptimizerState({ tensors, meta: JSON.parse(text) }));
 */
export function unflattenOptimizerState(flat: FlatOptimizerState): OptimizerStateDict {
  const where = 'unflattenOptimizerState';
  const { tensors, meta } = flat;
  if (typeof meta !== 'object' || meta === null || !Array.isArray(meta.paramGroups) || typeof meta.params !== 'object' || meta.params === null) {
    throw new TypeError(`${where}: meta needs 'optimizer', 'paramGroups' and 'params'`);
  }
  const flatOf = new Map<string, number>();
  for (const g of meta.paramGroups) {
    if (!Array.isArray(g.names) || !Array.isArray(g.params)) throw new TypeError(`${where}: every group in meta.paramGroups needs 'params' and 'names'`);
    g.names.forEach((n, j) => flatOf.set(n, g.params[j]));
  }
  const used = new Set<string>();
  const state: OptimizerStateDict['state'] = {};
  for (const [name, p] of Object.entries(meta.params)) {
    const flatIndex = flatOf.get(name);
    if (flatIndex === undefined) throw new Error(`${where}: meta.params has '${name}', which no group of meta.paramGroups names`);
    if (!Array.isArray(p.buffers)) throw new TypeError(`${where}: meta.params['${name}'].buffers must be a list of names`);
    const buffers: Record<string, SavedBuffer> = {};
    for (const b of p.buffers) {
      const key = `${name}.${b}`;
      const t = tensors[key];
      if (!t) throw new Error(`${where}: tensor '${key}' is missing`);
      buffers[b] = t;
      used.add(key);
    }
    state[flatIndex] = { step: p.step, buffers };
  }
  const extra = Object.keys(tensors).find((k) => !used.has(k));
  if (extra !== undefined) throw new Error(`${where}: tensor '${extra}' belongs to no parameter buffer listed in meta.params`);
  return { optimizer: meta.optimizer, state, paramGroups: meta.paramGroups };
}
