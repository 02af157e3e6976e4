/**
 * Fused 4-bit dequant-matmul with autograd (QLoRA's frozen base layer):
 * `y = x @ dequant(W)^T + b` and `dx = dy @ dequant(W)`, each one WGSL kernel that
 * reads the packed nibbles and the (nested) absmax directly, so the full-precision
 * weight never exists in device memory. W gets no gradient.
 */
import { DTypeError, type OpName, ShapeError, type Tensor, _engine, add, registerGradient } from '@webpeft/tensor';
import type { QuantState } from '../quant-state.js';
import { registerLinear4bitCpuKernels } from './linear-4bit-cpu.js';
import { registerLinear4bitWebGpuKernels } from './linear-4bit-webgpu.js';

/** Attributes of the `Linear4bit` and `Linear4bitGradInput` ops. */
export interface Linear4bitAttrs {
  inFeatures: number;
  outFeatures: number;
  blocksize: number;
  /** Absmax is double-quantized (inputs then carry qabsmax, dynamic map, absmax2, offset). */
  nested: boolean;
  nestedBlocksize: number;
}

// The op registry is typed by the tensor package's closed OpName union; these ops are
// added from outside it, hence the casts (see the package README / changeset).
export const LINEAR4BIT_OP = 'Linear4bit' as unknown as OpName;
export const LINEAR4BIT_GRAD_OP = 'Linear4bitGradInput' as unknown as OpName;

let registered = false;

/** Registers the kernels (cpu, webgpu) and the gradient of the 4-bit linear ops (idempotent). */
export function registerLinear4bitOps(): void {
  if (registered) return;
  registered = true;
  registerLinear4bitCpuKernels();
  registerLinear4bitWebGpuKernels();
  registerGradient(LINEAR4BIT_OP, {
    saveInputs: true,
    saveOutput: false,
    grad(dy, ctx) {
      const [, ...weight] = ctx.inputs;
      const grads: (Tensor | null)[] = ctx.inputs.map(() => null);
      if (ctx.needsGrad[0]) grads[0] = _engine.runOp(LINEAR4BIT_GRAD_OP, [dy, ...weight], ctx.attrs);
      return grads;
    },
  });
}

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
 * (bitsandbytes layout). Differentiable in `x` and `bias`; W is frozen.
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
  if (x.dtype !== 'f32' && !(x.dtype === 'f64' && x.backend.name === 'cpu')) {
    throw new DTypeError(`linear4bit: x must be f32 (or f64 on cpu), got ${x.dtype}`);
  }
  if (bias && (bias.rank !== 1 || bias.size !== outFeatures)) {
    throw new ShapeError(`linear4bit: bias [${bias.shape.join(', ')}] must be [${outFeatures}]`);
  }
  const attrs: Linear4bitAttrs = { inFeatures, outFeatures, blocksize: s.blocksize, nested: s.nested !== null, nestedBlocksize: s.nested?.blocksize ?? 0 };
  const y = _engine.runOp(LINEAR4BIT_OP, [x, ...weightInputs(w)], attrs as never);
  if (!bias) return y;
  const out = add(y, bias);
  y.dispose();
  return out;
}
