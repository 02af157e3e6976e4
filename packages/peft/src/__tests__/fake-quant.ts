import { type LinearLike, Module } from '@webpeft/nn';
import { type BackendName, type Tensor, add, assign, cast, div, floor, matmul, maximum, minimum, mul, tensor, tidy } from '@webpeft/tensor';

/**
 * A stand-in for a quantized linear layer (the shape of the contract `Linear4bit`
 * meets): int codes `[out, in]` (i32, not float, not trainable) times one scale;
 * `loadWeight` re-quantizes with the same scale. Enough to show that LoRA wraps any
 * LinearLike without knowing its storage.
 */
export class CodeLinear extends Module implements LinearLike {
  readonly codes: Tensor;
  readonly bias: Tensor | null = null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    weight: Float32Array,
    readonly scale: number,
    backend?: BackendName,
  ) {
    super();
    const codes = Int32Array.from(weight, (w) => Math.max(-127, Math.min(127, Math.round(w / scale))));
    this.codes = this.registerParameter('codes', tensor(codes, [outFeatures, inFeatures], { backend }));
    this.codes.requiresGrad = false;
  }

  dequantizedWeight(): Tensor {
    return tidy(() => mul(cast(this.codes, 'f32'), this.scale));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => matmul(x, this.dequantizedWeight(), { transposeB: true }));
  }

  loadWeight(weight: Tensor): void {
    // round(w / scale) = floor(w / scale + 0.5), clamped to the code range.
    tidy(() => assign(this.codes, cast(minimum(maximum(floor(add(div(weight, this.scale), 0.5)), -127), 127), 'i32')));
  }
}
