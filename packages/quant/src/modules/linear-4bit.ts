/**
 * `Linear4bit`: a frozen linear layer whose weight is stored in 4 bits (QLoRA,
 * Dettmers et al. 2023, arXiv:2305.14314). It implements nn's `LinearLike`, so LoRA
 * wraps it like any other linear layer.
 */
import { type LinearLike, Module } from '@webpeft/nn';
import { type Tensor, cast, keep, noGrad, tidy, withMemoryTag } from '@webpeft/tensor';
import type { QuantType } from '../codebooks.js';
import { linear4bit } from '../ops/linear-4bit.js';
import { type Quantized4bit, dequantize4bit, quantize4bit } from '../quantize-4bit.js';
import type { QuantState } from '../quant-state.js';

/** How a layer is quantized. */
export interface Linear4bitOptions {
  /** 'nf4' (default) or 'fp4'. */
  quantType?: QuantType;
  /** Elements per absmax block (default 64). */
  blockSize?: number;
  /** Double-quantize the absmax constants (default true). */
  doubleQuant?: boolean;
  /** Named in errors (the module path). */
  name?: string;
  /**
   * Dtype the layer computes in (bitsandbytes' `compute_dtype`, default f32): inputs and
   * bias are cast to it, the weight is dequantized to it, and the output is cast back to
   * the input's dtype. f16 needs a backend with f16.
   */
  computeDtype?: 'f32' | 'f16';
}

/**
 * `y = x @ dequant(W)^T + b`: `[..., in] -> [..., out]`, with W `[out, in]` packed in
 * 4 bits and dequantized inside the fused kernels (never materialised in device
 * memory). W gets no gradient; the bias (if any) is an ordinary parameter.
 *
 * @example
 * const q = await Linear4bit.fromLinear(linear, { quantType: 'nf4', doubleQuant: true });
 * const y = q.forward(x);
 */
export class Linear4bit extends Module implements LinearLike {
  readonly bias: Tensor | null;
  private packed: Tensor;
  private state: QuantState;

  private constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    quantized: Quantized4bit,
    bias: Tensor | null,
    private readonly options: Linear4bitOptions,
  ) {
    super();
    this.packed = this.registerBuffer('weight', keep(quantized.packed));
    this.state = quantized.state;
    this.bias = bias ? this.registerParameter('bias', bias) : null;
  }

  /**
   * Quantizes a linear layer (its `[out, in]` weight as given by `dequantizedWeight()`;
   * GPT-2's `[in, out]` Conv1D is transposed first). The bias is shared, not copied.
   */
  static async fromLinear(linear: LinearLike, options: Linear4bitOptions = {}): Promise<Linear4bit> {
    const weight = noGrad(() => linear.dequantizedWeight());
    try {
      const quantized = await Linear4bit.quantize(weight, options);
      return new Linear4bit(linear.inFeatures, linear.outFeatures, quantized, linear.bias, options);
    } finally {
      weight.dispose();
    }
  }

  /** Builds a layer from a weight `[out, in]` and optional bias `[out]`. */
  static async fromWeight(weight: Tensor, bias: Tensor | null, options: Linear4bitOptions = {}): Promise<Linear4bit> {
    const [outFeatures, inFeatures] = weight.shape;
    return new Linear4bit(inFeatures, outFeatures, await Linear4bit.quantize(weight, options), bias, options);
  }

  /**
   * Builds a layer from an already quantized weight (e.g. `quantize4bitStreamed`'s, or a
   * stored checkpoint's): `[out, in]` comes from `quantized.state.shape`. Takes ownership
   * of the packed weight, the state and the bias `[out]`.
   */
  static fromQuantized(quantized: Quantized4bit, bias: Tensor | null, options: Linear4bitOptions = {}): Linear4bit {
    const shape = quantized.state.shape;
    if (shape.length !== 2) throw new Error(`Linear4bit.fromQuantized${options.name ? ` (${options.name})` : ''}: the quantized weight has shape [${shape.join(', ')}], not [out, in]`);
    if (bias && (bias.rank !== 1 || bias.shape[0] !== shape[0])) {
      throw new Error(`Linear4bit.fromQuantized${options.name ? ` (${options.name})` : ''}: bias [${bias.shape.join(', ')}] does not match out ${shape[0]}`);
    }
    return new Linear4bit(shape[1], shape[0], quantized, bias, options);
  }

  private static quantize(weight: Tensor, options: Linear4bitOptions): Promise<Quantized4bit> {
    return withMemoryTag('quant', () =>
      quantize4bit(weight, {
        quantType: options.quantType ?? 'nf4',
        blocksize: options.blockSize ?? 64,
        doubleQuant: options.doubleQuant ?? true,
        name: options.name,
      }),
    );
  }

  /** The quantization state (absmax or nested constants, code table, block size). */
  get quantState(): QuantState {
    return this.state;
  }

  /** Dtype the layer computes in (bitsandbytes' `compute_dtype`). */
  get computeDtype(): 'f32' | 'f16' {
    return this.options.computeDtype ?? 'f32';
  }

  /** The packed weight: u32 words holding bitsandbytes' byte stream. */
  get packedWeight(): Tensor {
    return this.packed;
  }

  forward(x: Tensor): Tensor {
    const w = { packed: this.packed, quantState: this.state };
    // bitsandbytes' compute dtype: x and bias cast to it, the output back to x's dtype.
    const compute = x.dtype === 'f64' ? 'f64' : (this.options.computeDtype ?? 'f32');
    if (x.dtype === compute && (!this.bias || this.bias.dtype === compute)) return linear4bit(x, w, this.bias);
    return tidy(() => {
      const xc = x.dtype === compute ? x : cast(x, compute);
      const b = this.bias && this.bias.dtype !== compute ? cast(this.bias, compute) : this.bias;
      const y = linear4bit(xc, w, b);
      return y.dtype === x.dtype ? y : cast(y, x.dtype);
    });
  }

  dequantizedWeight(): Tensor {
    return dequantize4bit(this.packed, this.state);
  }

  /** Re-quantizes from a new `[out, in]` weight (used to merge adapters into a 4-bit base). */
  async loadWeight(weight: Tensor): Promise<void> {
    const quantized = await Linear4bit.quantize(weight, this.options);
    this.packed.dispose();
    this.state.dispose();
    this.packed = this.registerBuffer('weight', keep(quantized.packed));
    this.state = quantized.state;
  }

  override packedParameterCount(): number {
    return this.inFeatures * this.outFeatures;
  }

  override dispose(): void {
    super.dispose();
    this.state.dispose();
  }
}
