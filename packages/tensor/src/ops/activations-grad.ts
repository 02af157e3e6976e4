/** Gradients of the fused activations: one fused gradient op each (`GeluGrad`, ...; composites in `activations.ts`). */
import { engine } from '../engine.js';
import type { ActivationGradOp, ActivationOp } from '../op-names.js';
import { registerGradient } from '../registry.js';

const GRAD_OF: Record<ActivationOp, ActivationGradOp> = { Gelu: 'GeluGrad', GeluTanh: 'GeluTanhGrad', Silu: 'SiluGrad' };

/** Registers the gradients of GELU (both forms) and SiLU. */
export function registerActivationGradients(): void {
  for (const op of ['Gelu', 'GeluTanh', 'Silu'] as const) {
    const gradOp = GRAD_OF[op];
    registerGradient(op, {
      saveInputs: true,
      saveOutput: false,
      // dy has x's shape and dtype (the op is elementwise), so one kernel computes dx.
      grad: (dy, { inputs: [x] }) => [engine.runOp(gradOp, [dy, x], {})],
    });
  }
}
