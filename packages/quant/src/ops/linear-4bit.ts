/**
 * Fused 4-bit dequant-matmul with autograd (QLoRA's frozen base layer):
 * `y = x @ dequant(W)^T + b` and `dx = dy @ dequant(W)`, the ops `Linear4bit` and
 * `Linear4bitGradInput` (declared in `linear-4bit-op.ts`). For up to 64 rows each is one
 * WGSL kernel that reads the packed nibbles and the (nested) absmax directly, so the
 * full-precision weight never exists in device memory. W gets no gradient.
 */
import { DTypeError, ShapeError, type Tensor } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
import type { QuantState } from '../quant-state.js';
import type { Linear4bitAttrs } from './linear-4bit-op.js';
import { registerLinear4bitOps } from './register.js';

/** A packed 4-bit weight `[out, in]` and its state, as {@link linear4bit} takes it. */
export interface Weight4bit {
  packed: Tensor;
  quantState: QuantState;
}

/** The weight inputs of the ops, in kernel order. */
export function weightInputs(w: Weight4bit): Tensor[] {
  const s = w.quantState;
  if (s.nested) return [w.packed, s.code, s.nested.qabsmax, s.nested.code, s.nested.absmax2, s.nested.offset];
  return [w.packed, s.code, s.absmax!];
}

/**
 * `x [..., in] -> [..., out]`: `x @ dequant(W)^T + bias` with W `[out, in]` packed 4-bit
 * (bitsandbytes layout). Differentiable in `x` and `bias`; W is frozen. With f16 `x` the
 * weight is dequantized to f16 and the product is an f16 matmul (f32 accumulation).
 *
 * @example
 * const { packed, state } = await quantize4bit(weight);       // weight [out, in]
 * const y = linear4bit(x, { packed, quantState: state }, bias);
 */
export function linear4bit(x: Tensor, w: Weight4bit, bias?: Tensor | null): Tensor {
  registerLinear4bitOps();
  const s = w.quantState;
  if (s.shape.length !== 2) throw new ShapeError(`linear4bit: the weight must be 2-D [out, in], got [${s.shape.join(', ')}]`);
  const [outFeatures, inFeatures] = s.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inFeatures) {
    throw new ShapeError(`linear4bit: x [${x.shape.join(', ')}] must end in ${inFeatures} for a weight [${outFeatures}, ${inFeatures}]`);
  }
  if (x.dtype !== 'f32' && !(x.dtype === 'f64' && x.backend.capabilities.f64) && !(x.dtype === 'f16' && x.backend.capabilities.f16)) {
    throw new DTypeError(`linear4bit: x must be f32 (or f16 / f64 on a backend with them), got ${x.dtype}`);
  }
  if (bias && bias.dtype !== x.dtype) throw new DTypeError(`linear4bit: bias ${bias.dtype} and x ${x.dtype} differ; cast the bias first`);
  if (bias && (bias.rank !== 1 || bias.size !== outFeatures)) {
    throw new ShapeError(`linear4bit: bias [${bias.shape.join(', ')}] must be [${outFeatures}]`);
  }
  const attrs: Linear4bitAttrs = { inFeatures, outFeatures, blocksize: s.blocksize, nested: s.nested !== null, nestedBlocksize: s.nested?.blocksize ?? 0 };
  if (!bias) return runOp('Linear4bit', [x, ...weightInputs(w)], attrs);
  return runOp('Linear4bit', [x, ...weightInputs(w), bias], { ...attrs, bias: true });
}
