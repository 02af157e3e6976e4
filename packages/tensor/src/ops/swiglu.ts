/**
 * SwiGLU's gate, `silu(gate) * up` (Shazeer 2020), as one fused op forward (`SwiGLU`)
 * and one kernel backward: the in-place op `SwiGLUBackward` writes both input gradients
 * in one dispatch (an op has one output). Backends without that kernel form the two
 * gradients with ops.
 */
import { ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { hasInPlaceKernel, registerComposite, registerGradient } from '../registry.js';
import { shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { silu } from './activations.js';
import { mul } from './elementwise.js';
import { checkSameFloat } from './float-check.js';

declare module '../op-names.js' {
  interface FusedOpAttrs {
    /** `gate`, `up` of one shape -> `silu(gate) * up`. */
    SwiGLU: Record<string, never>;
  }
}

/** Arguments of the `SwiGLUBackward` in-place op: all three of one shape and dtype. */
export interface SwiGLUBackwardArgs {
  readonly dy: Tensor;
  readonly gate: Tensor;
  readonly up: Tensor;
}

/** Both input gradients of `SwiGLU`, of the inputs' shape and dtype. */
export interface SwiGLUGrads {
  /** `dy * up * silu'(gate)`. */
  gate: Tensor;
  /** `dy * silu(gate)`. */
  up: Tensor;
}

declare module '../registry.js' {
  interface InPlaceOps {
    /** The backward of `SwiGLU` in one dispatch: allocates and returns both input gradients. */
    SwiGLUBackward: { args: SwiGLUBackwardArgs; result: SwiGLUGrads };
  }
}

/**
 * `silu(gate) * up` in one kernel (LLaMA's MLP between `gate_proj`/`up_proj` and
 * `down_proj`): `gate`, `up` `[..., H]` of one shape and float dtype -> `[..., H]`.
 * f16 inputs are computed in f32 and rounded once. Gradients to both inputs.
 * @example const h = swiglu(gateProj.forward(x), upProj.forward(x));
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  gate.liveStorage('swiglu');
  up.liveStorage('swiglu');
  checkSameFloat('swiglu', gate, up);
  if (!shapesEqual(gate.shape, up.shape)) throw new ShapeError(`swiglu: gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must have one shape`);
  return engine.runOp('SwiGLU', [gate, up], {});
}

/** The gradients with ops (backends without the one-dispatch backward). */
function gradsWithOps({ dy, gate, up }: SwiGLUBackwardArgs): SwiGLUGrads {
  const a = silu(gate);
  const du = mul(dy, a);
  a.dispose();
  const dyu = mul(dy, up);
  const dg = engine.runOp('SiluGrad', [dyu, gate], {});
  dyu.dispose();
  return { gate: dg, up: du };
}

/** Registers the composite and the gradient of `SwiGLU`. */
export function registerSwiGLUOps(): void {
  registerComposite('SwiGLU', ([g, u]) => mul(silu(g), u));
  registerGradient('SwiGLU', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { inputs: [gate, up], needsGrad }) => {
      const backend = gate.backend;
      const args = { dy, gate, up };
      const g = hasInPlaceKernel('SwiGLUBackward', backend.name) ? engine.runInPlace('SwiGLUBackward', args, backend) : gradsWithOps(args);
      // The unused one of a pair computed together is dropped (the scope would free it too).
      if (!needsGrad[0]) g.gate.dispose();
      if (!needsGrad[1]) g.up.dispose();
      return [needsGrad[0] ? g.gate : null, needsGrad[1] ? g.up : null];
    },
  });
}
