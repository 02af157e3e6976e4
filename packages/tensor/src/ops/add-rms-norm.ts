/**
 * Residual add + RMS norm in one kernel (as Liger's and flash-attn's fused add-norm):
 * `sum = x + residual` (the next residual) and `normed = rmsnorm(sum) * weight`. An op
 * has one output, so the kernel is the in-place op `AddRmsNorm`, which allocates and
 * returns both; the two results are then put on the tape as the `Add` and `RmsNorm`
 * they stand for, so gradients are those of the unfused pair (the norm's input and
 * weight gradients are one fused kernel each already). Backends without the kernel
 * run the two ops.
 */
import { ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { getGradient, hasInPlaceKernel } from '../registry.js';
import { shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { checkSameFloat } from './float-check.js';
import { rmsNorm } from './norms.js';

/** Arguments of the `AddRmsNorm` in-place op. */
export interface AddRmsNormArgs {
  /** `[..., D]`. */
  readonly x: Tensor;
  /** `[..., D]`, x's shape and dtype. */
  readonly residual: Tensor;
  /** `[D]`. */
  readonly weight: Tensor;
  readonly eps: number;
}

/** Both results of {@link addRmsNorm}, of x's shape and dtype. */
export interface AddRmsNormResult {
  /** `x + residual` (rounded to the dtype; the norm reads this rounded sum). */
  sum: Tensor;
  /** `sum / sqrt(mean(sum^2) + eps) * weight`. */
  normed: Tensor;
}

declare module '../registry.js' {
  interface InPlaceOps {
    /** Residual add + RMS norm in one dispatch: allocates and returns the sum and the normed sum. */
    AddRmsNorm: { args: AddRmsNormArgs; result: AddRmsNormResult };
  }
}

/**
 * Residual add and RMS norm over the last axis in one kernel: `x`, `residual`
 * `[..., D]` of one shape and float dtype, `weight [D]` -> `{ sum: x + residual,
 * normed: rmsNorm(sum, weight, eps) }` (each `[..., D]`; the caller disposes both).
 * Statistics in f32 for f16 inputs. Gradients flow to all three inputs as through
 * `add` then `rmsNorm`.
 * @example
 * const { sum: h, normed } = addRmsNorm(x, attnOut, postNorm.weight, 1e-6);
 */
export function addRmsNorm(x: Tensor, residual: Tensor, weight: Tensor, eps = 1e-6): AddRmsNormResult {
  x.liveStorage('addRmsNorm');
  residual.liveStorage('addRmsNorm');
  weight.liveStorage('addRmsNorm');
  checkSameFloat('addRmsNorm', x, residual, weight);
  if (!shapesEqual(x.shape, residual.shape)) throw new ShapeError(`addRmsNorm: x ${fmtShape(x.shape)} and residual ${fmtShape(residual.shape)} must have one shape`);
  const d = x.shape[x.rank - 1];
  if (x.rank < 1 || weight.rank !== 1 || weight.size !== d) throw new ShapeError(`addRmsNorm: weight ${fmtShape(weight.shape)} must be [${d}] for x ${fmtShape(x.shape)}`);
  for (const t of [x, residual, weight]) if (t.busyWith !== null) return unfused(x, residual, weight, eps); // runOp throws the busy error
  const backend = x.backend;
  if (!hasInPlaceKernel('AddRmsNorm', backend.name) || (x.storage!.bindings ?? 1) > 1) return unfused(x, residual, weight, eps);
  const probe = engine.checkpointProbe;
  // Inside a checkpoint's first forward: report the reads as an op would (nothing is recorded).
  if (probe !== null && engine.gradEnabled) probe.see('AddRmsNorm', [x, residual, weight]);
  const out = engine.runInPlace('AddRmsNorm', { x, residual, weight, eps }, backend);
  if (probe === null && engine.gradEnabled && (x.requiresGrad || residual.requiresGrad || weight.requiresGrad)) {
    if (x.requiresGrad || residual.requiresGrad) engine.recordNode('Add', [x, residual], {}, getGradient('Add')!, out.sum);
    engine.recordNode('RmsNorm', [out.sum, weight], { eps }, getGradient('RmsNorm')!, out.normed);
  }
  return out;
}

/** The same results with two ops (and their two dispatches). */
function unfused(x: Tensor, residual: Tensor, weight: Tensor, eps: number): AddRmsNormResult {
  const sum = add(x, residual);
  return { sum, normed: rmsNorm(sum, weight, eps) };
}
