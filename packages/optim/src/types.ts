import type { Tensor } from '@webpeft/tensor';

/** Host element arrays an update rule reads and writes on the cpu backend. */
export type FloatArray = Float32Array | Float64Array;

/** Hyperparameters every optimizer has (per parameter group). */
export interface BaseHyper {
  /** Learning rate (a scheduler rewrites it each step). */
  lr: number;
  /** Weight decay (L2 for SGD/Adam, decoupled for AdamW/Lion). */
  weightDecay: number;
}

/**
 * One parameter group: its parameters, optional names (used in reports) and its
 * hyperparameters. `initialLr` is set by the first scheduler attached (like PyTorch's
 * `initial_lr`), so a scheduler created after a resume keeps the original base lr.
 */
export type ParamGroup<H extends BaseHyper> = H & {
  params: Tensor[];
  names: string[];
  initialLr?: number;
};

/** A parameter group as given to a constructor: hyperparameters left out take the optimizer's defaults. */
export type ParamGroupSpec<H extends BaseHyper> = Partial<H> & {
  params: readonly Tensor[];
  /** Names of `params` (same order), e.g. Hugging Face paths; used in non-finite reports. */
  names?: readonly string[];
};

/** Parameters as a flat list (one group) or as groups. */
export type ParamsInput<H extends BaseHyper> = readonly Tensor[] | readonly ParamGroupSpec<H>[];

/**
 * Optimizer state of one parameter, as explicit data: the count of updates applied and
 * the named state tensors (same shape and dtype as the parameter, tagged 'optimizer').
 * Keeping it as plain data lets a paged or 8-bit optimizer move or compress `buffers`.
 */
export interface ParamState {
  step: number;
  buffers: Record<string, Tensor>;
}

/** A parameter whose gradient was not finite. */
export interface NonFiniteParam {
  group: number;
  index: number;
  /** The group's name for it, or `group G param I`. */
  name: string;
}

/** What one `step()` did. */
export interface StepReport {
  /** True when the update was skipped (non-finite gradients); parameters and state are unchanged. */
  skipped: boolean;
  /** Parameters updated (those with a gradient). */
  updated: number;
  /** Parameters whose gradient has a NaN or infinity (empty unless `skipped`). */
  nonFinite: NonFiniteParam[];
  /** A readable sentence: what was skipped and why, or how many parameters were updated. */
  message: string;
}

/**
 * A state tensor copied to the host, JSON-able apart from the typed array: f32/f64
 * moments, or u32 words of packed 8-bit states (`shape` `[n]`).
 */
export interface SavedBuffer {
  shape: number[];
  dtype: 'f32' | 'f64' | 'u32';
  data: Float32Array | Float64Array | Uint32Array;
}

/** The saved state of one parameter: its update count and host copies of its state tensors. */
export interface SavedParamState {
  step: number;
  buffers: Record<string, SavedBuffer>;
}

/** Shape and dtype a saved state buffer must have to be loaded onto a parameter. */
export interface BufferLayout {
  shape: number[];
  dtype: SavedBuffer['dtype'];
}

/** A parameter group in a state dict: hyperparameters, the flat indices of its parameters and their names. */
export type SavedGroup = Record<string, unknown> & { params: number[]; names: string[] };

/**
 * Everything needed to resume an optimizer exactly: hyperparameters per group and, per
 * parameter (keyed by its flat index over the groups, in order, as PyTorch does), the
 * step count and host copies of the state tensors. `paramGroups[g].names[j]` names the
 * parameter of flat index `paramGroups[g].params[j]`; loading matches parameters by
 * these names, so names given at construction (e.g. Hugging Face paths) key the state.
 */
export interface OptimizerStateDict {
  /** The update rule's name (`AdamW`, `Adam`, `SGD`, `Lion`, `AdamW8bit`, `Adam8bit`). */
  optimizer: string;
  state: Record<number, SavedParamState>;
  paramGroups: SavedGroup[];
}
