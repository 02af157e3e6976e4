/**
 * The hook through which `fromPretrained` quantizes linear layers while it loads, without
 * nn knowing any codec: a quantization package (`@webpeft/quant`'s `quantizeOnLoad`)
 * implements {@link LoadQuantizer}, as its `Linear4bit` implements `LinearLike`.
 */
import type { BackendName, Tensor } from '@webpeft/tensor';
import type { RawTensor } from '../io/index.js';
import type { LinearLike } from '../linear-like.js';
import type { Module } from '../module.js';

/**
 * One linear layer's full-precision weight as the checkpoint holds it, read piece by piece
 * so a quantizer never needs the whole f32 weight on the device at once.
 */
export interface StreamedWeight {
  /** Checkpoint key of the weight (named in errors). */
  readonly key: string;
  /** `[out, in]` (a GPT-2 `Conv1D`'s `[in, out]` is transposed on the host). */
  readonly shape: readonly [number, number];
  /**
   * Elements `[start, end)` of the `[out, in]` weight flattened row-major, decoded exactly
   * to a new f32 tensor `[end - start]` on the load's backend (the caller disposes it).
   */
  decode(start: number, end: number): Tensor;
}

/** What a {@link LoadQuantizer} decides for one checkpoint (see `LoadQuantizer.plan`). */
export interface LoadQuantizerPlan {
  /** True when the checkpoint stores the selected layers' weights quantized already. */
  readonly stored: boolean;
  /** Paths of the linear layers of `model` (built on `meta`, shapes only) to load quantized. */
  selectLayers(model: Module): string[];
  /**
   * For a stored checkpoint: the problems (one line each, empty when fine) of one layer's
   * weight tensors, keyed relative to the layer (`weight`, `weight.absmax`, ...), for a
   * layer of `shape` `[out, in]`. Called before anything is allocated.
   */
  checkStored(path: string, tensors: ReadonlyMap<string, RawTensor>, shape: readonly [number, number]): string[];
  /** Quantizes one layer from its streamed weight; `bias` `[out]` (already on the device) becomes the layer's. */
  quantize(path: string, weight: StreamedWeight, bias: Tensor | null): Promise<LinearLike>;
  /** Builds one layer from its stored tensors (as checked by `checkStored`) on `backend`. */
  fromStored(path: string, tensors: ReadonlyMap<string, RawTensor>, bias: Tensor | null, backend: BackendName): LinearLike | Promise<LinearLike>;
}

/**
 * A quantizer `fromPretrained` calls while it loads (its `quantize` option).
 * @example
 * import { quantizeOnLoad } from '@webpeft/quant';
 * const { model } = await fromPretrained(dir, { quantize: quantizeOnLoad({ quantType: 'nf4', doubleQuant: true }) });
 */
export interface LoadQuantizer {
  /**
   * Plans one load onto `backend`. `quantizationConfig` is `config.json`'s
   * `quantization_config` (undefined for a full-precision checkpoint); an unsupported one
   * throws naming `configFile`. Called before anything is read or allocated.
   */
  plan(quantizationConfig: unknown, configFile: string, backend: BackendName): LoadQuantizerPlan;
}

/** True when `x` implements {@link LoadQuantizer}. */
export function isLoadQuantizer(x: unknown): x is LoadQuantizer {
  return typeof x === 'object' && x !== null && typeof (x as LoadQuantizer).plan === 'function';
}
