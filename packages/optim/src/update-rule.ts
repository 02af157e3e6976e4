import type { BaseHyper, FloatArray } from './types.js';

/** Per-step scalars of a rule, computed on the host in float64 (bias corrections, decay factors). */
export type Scalars = Record<string, number>;

/**
 * The update of one optimizer, written once per backend (Burn's `step(lr, param,
 * grad, state) -> state`, with the state updated in place):
 *
 * - `cpu` loops over the host arrays of one parameter, in PyTorch's formula order, in
 *   float64 with `Math.fround` wherever PyTorch materialises an f32 tensor;
 * - `wgsl` is the body of ONE fused kernel over the flat elements of many parameters
 *   (see `fused-webgpu.ts`). It reads `g`, updates `var p` and a `var` per state
 *   buffer (named as in `stateNames`), and reads scalars as `u.<name>`.
 */
export interface UpdateRule<H extends BaseHyper> {
  /** Kernel name prefix and the optimizer's name in state dicts. */
  readonly name: string;
  /** State buffers a parameter needs under `h`, created as zeros on its first step. */
  stateNames(h: H): readonly string[];
  /** Scalars for the update numbered `step` (1-based, after incrementing). */
  scalars(h: H, step: number): Scalars;
  /** Reference update of one parameter on host arrays (in place). */
  cpu(p: FloatArray, g: FloatArray, state: Record<string, FloatArray>, k: Scalars, h: H): void;
  /** WGSL statements for one element, and the flags that select them (part of the pipeline key). */
  wgsl(h: H): { variant: string; body: string };
}
