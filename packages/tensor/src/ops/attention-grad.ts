/**
 * The gradient of `fusedAttention`'s op (FlashAttention-2's backward): with
 * `D = rowsum(dO * O)` per query row, one fused op recomputes the probabilities tile by
 * tile for `dq`, another for `dk` and `dv` (summed over each kv head's query group).
 */
import { engine } from '../engine.js';
import { registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';
import { reshape, slice } from './layout.js';
import { sum } from './reduce.js';

/** Registers the gradient of `FusedAttention`. */
export function registerAttentionGradient(): void {
  // The statistics columns (m, l) of the output are detached: their dy is ignored.
  registerGradient('FusedAttention', {
    saveInputs: true,
    saveOutput: true,
    grad: (dy, { attrs, inputs: [q, k, v, bias], output, needsGrad }) => {
      const dh = q.shape[3];
      const whole = [-1, -1, -1, dh];
      const rowDot = sum(mul(slice(dy, [0, 0, 0, 0], whole), slice(output!, [0, 0, 0, 0], whole)), -1);
      const inputs = bias ? [dy, q, k, v, output!, rowDot, bias] : [dy, q, k, v, output!, rowDot];
      const dq = needsGrad[0] ? engine.runOp('FusedAttentionGradQ', inputs, attrs) : null;
      const grads = (dk: Tensor | null, dv: Tensor | null) => (bias ? [dq, dk, dv, null] : [dq, dk, dv]);
      if (!needsGrad[1] && !needsGrad[2]) return grads(null, null);
      const dkv = engine.runOp('FusedAttentionGradKV', inputs, attrs);
      const [, ...kvShape] = dkv.shape;
      const dk = needsGrad[1] ? reshape(slice(dkv, [0], [1]), kvShape) : null;
      const dv = needsGrad[2] ? reshape(slice(dkv, [1], [1]), kvShape) : null;
      return grads(dk, dv);
    },
  });
}
