/**
 * The gradient and the composite definition of the 4-bit linear ops. The composite is
 * `x @ dequant(W)^T` written with ops (dequantize, reshape, matmul): what runs where a
 * backend has no fused kernel, and the oracle the fused kernels are tested against.
 */
import { type Tensor, add, cast, matmul, reshape, sum } from '@webpeft/tensor';
import { type GradientSpec, runOp } from '@webpeft/tensor/kernel';
import type { Linear4bitAttrs } from './linear-4bit-op.js';

/** W `[out, in]` in float32 from the weight inputs, written with ops (no gradient: W is frozen). */
export function dequantizedWeight(w: readonly Tensor[], a: Linear4bitAttrs): Tensor {
  const n = a.inFeatures * a.outFeatures;
  const [packed, code] = w;
  let absmax = w[2];
  let scaled: Tensor | null = null;
  if (a.nested) {
    const [, , qabsmax, dyn, absmax2, offset] = w;
    scaled = runOp('DequantizeBlockwise', [qabsmax, absmax2, dyn], { blocksize: a.nestedBlocksize, n: Math.ceil(n / a.blocksize) });
    absmax = add(scaled, offset);
    scaled.dispose();
  }
  const flat = runOp('Dequantize4bit', [packed, absmax, code], { blocksize: a.blocksize, n });
  if (a.nested) absmax.dispose();
  const out = reshape(flat, [a.outFeatures, a.inFeatures]);
  flat.dispose();
  return out;
}

/** `x @ dequant(W)^T` (forward) or `dy @ dequant(W)` (input gradient), in `x`'s dtype. */
function composite(grad: boolean) {
  return (inputs: readonly Tensor[], a: Linear4bitAttrs): Tensor => {
    const [x, ...rest] = inputs;
    const w = a.bias ? rest.slice(0, -1) : rest;
    const w32 = dequantizedWeight(w, a);
    const wx = x.dtype === w32.dtype ? w32 : cast(w32, x.dtype);
    const y = matmul(x, wx, { transposeB: !grad });
    if (wx !== w32) wx.dispose();
    w32.dispose();
    if (!a.bias) return y;
    const out = add(y, rest[rest.length - 1]);
    y.dispose();
    return out;
  };
}

/** `dx = Linear4bitGradInput(dy, W)` and the bias's row sum; the weight inputs get no gradient. */
export const linear4bitGradient: GradientSpec<'Linear4bit'> = {
  saveInputs: true,
  saveOutput: false,
  grad(dy, ctx) {
    const bias = ctx.attrs.bias === true;
    const weight = ctx.inputs.slice(1, bias ? -1 : undefined);
    const grads: (Tensor | null)[] = ctx.inputs.map(() => null);
    if (ctx.needsGrad[0]) grads[0] = runOp('Linear4bitGradInput', [dy, ...weight], { ...ctx.attrs, bias: false });
    // The bias gradient sums dy over every row.
    if (bias && ctx.needsGrad[grads.length - 1]) grads[grads.length - 1] = sum(reshape(dy, [-1, ctx.attrs.outFeatures]), 0);
    return grads;
  },
};

/** Composite definitions of `Linear4bit` and `Linear4bitGradInput`. */
export const linear4bitComposite = composite(false);
export const linear4bitGradInputComposite = composite(true);
