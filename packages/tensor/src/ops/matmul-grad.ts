/** Gradients of the batched matmul and of the fused `MatMulAdd`. */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { sumToShape } from '../autograd/sum-to-shape.js';
import { reshape } from './layout.js';
import { matmul, matmulAdd } from './matmul.js';

/**
 * dA and dB of `Y = alpha op(A) op(B)`: dA = dY op(B)^T (transposed back if A was), dB
 * likewise, batch dims summed; `alpha` is folded into the products' store. A weight
 * `B [k, n]` shared by every batch of `A [..., m, k]` (a linear layer on `[B, T, d]`)
 * gets its gradient from one product over the flattened rows, `A^T dY` of `[B*T, k]`
 * and `[B*T, n]`, instead of a product per batch and a `Sum` over them.
 */
function matmulGrads(
  dy: Tensor,
  a: Tensor,
  b: Tensor,
  transposeA: boolean,
  transposeB: boolean,
  alpha: number,
  inputShapes: readonly (readonly number[])[],
  needsGrad: readonly boolean[],
): [Tensor | null, Tensor | null] {
  const mm = (x: Tensor, y: Tensor, tA: boolean, tB: boolean) =>
    alpha === 1 ? matmul(x, y, { transposeA: tA, transposeB: tB }) : matmulAdd(x, y, null, { transposeA: tA, transposeB: tB, alpha });
  let ga: Tensor | null = null;
  let gb: Tensor | null = null;
  if (needsGrad[0]) ga = sumToShape(transposeA ? mm(b, dy, transposeB, true) : mm(dy, b, false, !transposeB), inputShapes[0]);
  if (needsGrad[1]) {
    if (b.rank === 2 && a.rank > 2 && !transposeA) {
      const rowsA = reshape(a, [-1, a.shape[a.rank - 1]]);
      const rowsDy = reshape(dy, [-1, dy.shape[dy.rank - 1]]);
      gb = transposeB ? mm(rowsDy, rowsA, true, false) : mm(rowsA, rowsDy, true, false);
    } else {
      gb = sumToShape(transposeB ? mm(dy, a, true, transposeA) : mm(a, dy, !transposeA, false), inputShapes[1]);
    }
  }
  return [ga, gb];
}

/** Registers the gradients of MatMul and MatMulAdd. */
export function registerMatmulGradients(): void {
  registerGradient('MatMul', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs: { transposeA, transposeB }, inputs: [a, b], inputShapes, needsGrad }) => matmulGrads(dy, a, b, transposeA, transposeB, 1, inputShapes, needsGrad),
  });
  // Y = alpha op(A) op(B) + C: the MatMul gradients, and dC = dY summed to C's shape
  // (a bias row: one Sum; an addend of Y's shape: dY itself).
  // Only A and B are saved: the addend (a LoRA layer's base output) is not kept alive.
  registerGradient('MatMulAdd', {
    saveInputs: 2,
    saveOutput: false,
    grad: (dy, { attrs: { transposeA, transposeB, alpha }, inputs: [a, b], inputShapes, needsGrad }) => {
      const [ga, gb] = matmulGrads(dy, a, b, transposeA, transposeB, alpha, inputShapes, needsGrad);
      if (inputShapes.length < 3) return [ga, gb];
      // dY goes on as a new handle on its storage (backward disposes dY itself), as Add's gradient does.
      return [ga, gb, needsGrad[2] ? sumToShape(engine.shareStorage(dy, dy.shape, 'backward'), inputShapes[2]) : null];
    },
  });
}
