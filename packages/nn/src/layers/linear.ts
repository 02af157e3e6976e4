import { type Tensor, add, assign, matmul, matmulAdd, transpose, zeros } from '@webpeft/tensor';
import { type ParamOptions, kaimingUniformInit, normalInit } from '../init.js';
import type { LinearLike } from '../linear-like.js';
import { Module } from '../module.js';

/** The options a linear layer creates its own tensors with: `linearBackend` wins over `backend`. */
function linearParamOptions(options: ParamOptions): ParamOptions {
  return options.linearBackend === undefined ? options : { ...options, backend: options.linearBackend };
}

/**
 * `y = x W^T + b` with `weight [out, in]` (PyTorch/HF layout) and optional `bias [out]`.
 * Shapes: `[..., in] -> [..., out]`. Init as PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
 * Pass `weight` to adopt an existing `[out, in]` tensor instead (tied embeddings: the
 * same tensor, counted once by `numParameters`).
 */
export class Linear extends Module implements LinearLike {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: ParamOptions & { bias?: boolean; weight?: Tensor } = {},
  ) {
    super();
    const w = options.weight;
    if (w && (w.rank !== 2 || w.shape[0] !== outFeatures || w.shape[1] !== inFeatures)) {
      throw new Error(`Linear: weight [${w.shape.join(', ')}] does not match [out ${outFeatures}, in ${inFeatures}]`);
    }
    const own = linearParamOptions(options);
    this.weight = this.registerParameter('weight', w ?? kaimingUniformInit([outFeatures, inFeatures], inFeatures, own));
    this.bias = options.bias === false ? null : this.registerParameter('bias', kaimingUniformInit([outFeatures], inFeatures, own));
  }

  forward(x: Tensor): Tensor {
    // The bias is added in the matmul kernel's store (one dispatch).
    if (this.bias) return matmulAdd(x, this.weight, this.bias, { transposeB: true });
    return matmul(x, this.weight, { transposeB: true });
  }

  dequantizedWeight(): Tensor {
    return add(this.weight, 0);
  }

  loadWeight(weight: Tensor): void {
    assign(this.weight, weight);
  }
}

/**
 * GPT-2's `Conv1D`: a linear layer storing `weight [in, out]` ("fan-in-fan-out"),
 * `y = x W + b`. Shapes: `[..., in] -> [..., out]`. Init as HF: W ~ N(0, 0.02), b = 0.
 */
export class Conv1D extends Module implements LinearLike {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: ParamOptions & { initStd?: number } = {},
  ) {
    super();
    const std = options.initStd ?? 0.02;
    const own = linearParamOptions(options);
    this.weight = this.registerParameter('weight', normalInit([inFeatures, outFeatures], std, own));
    this.bias = this.registerParameter('bias', zeros([outFeatures], { backend: own.backend, dtype: own.dtype }));
  }

  forward(x: Tensor): Tensor {
    // The bias is added in the matmul kernel's store (one dispatch).
    return matmulAdd(x, this.weight, this.bias);
  }

  dequantizedWeight(): Tensor {
    return transpose(this.weight);
  }

  loadWeight(weight: Tensor): void {
    const t = transpose(weight);
    assign(this.weight, t);
    t.dispose();
  }
}
