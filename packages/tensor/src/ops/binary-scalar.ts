/**
 * `BinaryScalar`: a binary op with one operand a plain number, which the kernel reads
 * from its uniforms. Without it `add(x, 1)` or LoRA's `mul(h, scaling)` was two
 * dispatches (a `Fill` of the scalar, then the broadcasting op); the composite
 * definition is exactly that pair, so backends without the kernel (cpu, meta) and the
 * tests' oracle stay the old path.
 */
import { COMPARE_OPS, type BinaryOp, type CompareOp, type ScalarOperandOp } from '../op-names.js';
import { engine } from '../engine.js';
import { registerComposite } from '../registry.js';
import type { Tensor } from '../tensor.js';

const SCALAR_OPERAND_OPS: ReadonlySet<string> = new Set<string>(['Add', 'Sub', 'Mul', 'Div', ...COMPARE_OPS]);
/**
 * Ops a caller may run as `BinaryScalar` on a tensor that never requires grad (their
 * gradient would need `x`): `maximum(count, 1)`, the guard of a mean over counted rows.
 * `maximum(x, c)` itself keeps the `Fill` path.
 */
const NO_GRAD_SCALAR_OPS: ReadonlySet<string> = new Set<string>(['Maximum']);

/**
 * Whether `op` with a scalar operand (first or second) runs as `BinaryScalar`: ops
 * whose gradient needs no input (so nothing is saved for backward, as before), and
 * comparisons. `value / x`, `pow`, `maximum` and `minimum` keep the `Fill` path.
 */
export function takesScalarOperand(op: BinaryOp | CompareOp, scalarFirst: boolean): op is ScalarOperandOp {
  return SCALAR_OPERAND_OPS.has(op) && !(op === 'Div' && scalarFirst);
}

/** Throws for attributes no `BinaryScalar` may have (named op, flag and reason). */
export function checkBinaryScalar(op: string, scalarFirst: boolean): void {
  if (!SCALAR_OPERAND_OPS.has(op) && !NO_GRAD_SCALAR_OPS.has(op)) {
    throw new Error(`BinaryScalar: op '${op}' cannot take a scalar operand this way (one of ${[...SCALAR_OPERAND_OPS, ...NO_GRAD_SCALAR_OPS].join(', ')})`);
  }
  if (op === 'Div' && scalarFirst) throw new Error('BinaryScalar: value / x is not supported (its gradient needs x); divide by a scalar tensor');
}

/** Whether `op` is a comparison (its output is `bool`). */
export function isCompareOp(op: string): op is CompareOp {
  return (COMPARE_OPS as readonly string[]).includes(op);
}

/** Registers the composite of `BinaryScalar`: `Fill` the scalar, then the binary op. */
export function registerBinaryScalarComposite(): void {
  registerComposite('BinaryScalar', (inputs: readonly Tensor[], { op, value, scalarFirst }) => {
    checkBinaryScalar(op, scalarFirst);
    const x = inputs[0];
    const s = engine.runOp('Fill', [], { shape: [], value, dtype: x.dtype }, x.backend);
    return engine.runOp(op, scalarFirst ? [s, x] : [x, s], {});
  });
}
