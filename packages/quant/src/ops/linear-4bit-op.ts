/**
 * Declaration of the fused 4-bit linear ops (`Linear4bit` and its input gradient
 * `Linear4bitGradInput`) in the tensor package's op registry. The kernels
 * (`linear-4bit-cpu.ts`, `linear-4bit-webgpu.ts`), the gradient and composite
 * definition (`linear-4bit-composite.ts`) and the public `linear4bit` import it.
 *
 * Inputs: `x [..., k]`, then the weight inputs of {@link weightInputs}: `packed u32`,
 * `code f32 [16]`, and `absmax f32 [nb]` or, when `nested`, `qabsmax u32`,
 * `dyn f32 [256]`, `absmax2 f32 [nb2]`, `offset f32 [1]`.
 */

/** Attributes of the `Linear4bit` and `Linear4bitGradInput` ops. */
export interface Linear4bitAttrs {
  inFeatures: number;
  outFeatures: number;
  blocksize: number;
  /** Absmax is double-quantized (inputs then carry qabsmax, dynamic map, absmax2, offset). */
  nested: boolean;
  nestedBlocksize: number;
  /**
   * `Linear4bit` only: the last input is a bias `[out]`, added as the product is stored
   * (no dispatch of its own on the dequantize-then-matmul path). Absent: no bias.
   */
  bias?: boolean;
}

declare module '@webpeft/tensor/kernel' {
  interface OpAttrs {
    /** `x [..., in]`, weight inputs -> `[..., out]`: `x @ dequant(W)^T` with W `[out, in]` packed 4-bit. */
    Linear4bit: Linear4bitAttrs;
    /** `dy [..., out]`, weight inputs -> `[..., in]`: `dy @ dequant(W)`. */
    Linear4bitGradInput: Linear4bitAttrs;
  }
}
