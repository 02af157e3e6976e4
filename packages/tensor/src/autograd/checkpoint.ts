/**
 * Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
 * Cost"), with the semantics of PyTorch's non-reentrant `torch.utils.checkpoint`: the
 * forward keeps only the inputs; backward re-runs the function with recording and
 * backpropagates through that recomputation, then frees it.
 */
import { engine } from '../engine.js';
import { fmtShape } from '../errors.js';
import { isFloat } from '../dtype.js';
import { getRngState, setRngState } from '../random/rng.js';
import type { GradientSpec } from '../registry.js';
import { shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { CheckpointProbe } from './checkpoint-probe.js';

/** Options of {@link checkpoint}. */
export interface CheckpointOptions {
  /**
   * Restore the RNG state of the forward before the recomputation (default true, as
   * PyTorch's `preserve_rng_state`), so that dropout inside draws the same masks.
   */
  preserveRngState?: boolean;
  /** Name in errors and on the tape (default `checkpoint`). */
  name?: string;
}

/**
 * Runs `fn(inputs)` without keeping its intermediate activations for backward: only
 * `inputs` are kept, and `backward()` recomputes `fn` (with the RNG state of the first
 * run, so dropout masks repeat) and backpropagates through the recomputation, which is
 * freed right after. Gradients equal those without the checkpoint, bit for bit on the
 * same backend. Parameters that `fn` reads (module weights, adapters) receive their
 * gradients as usual; any other tensor that requires grad and has a graph of its own
 * must be passed in `inputs` (an error says so otherwise). Tensors `fn` reads that
 * backward needs and that the caller may dispose before it (masks, RoPE tables) belong
 * in `inputs` too: they are kept alive with them.
 *
 * `fn` must be deterministic given its inputs and the RNG state, must not change
 * state outside (a KV cache) and must return one new tensor. Intermediates `fn`
 * creates are disposed when it returns. Without grad mode (`noGrad`) `fn` just runs.
 *
 * Shapes: whatever `fn` maps `inputs` to.
 * @example
 * // A decoder layer keeps only its input x: [B, T, D] -> [B, T, D].
 * const y = checkpoint(([h]) => layer.forward(h), [x]);
 */
export function checkpoint(fn: (inputs: readonly Tensor[]) => Tensor, inputs: readonly Tensor[], options: CheckpointOptions = {}): Tensor {
  const name = options.name ?? 'checkpoint';
  for (const t of inputs) {
    if (!(t instanceof Tensor)) throw new TypeError(`${name}: inputs must be tensors, got ${typeof t}`);
    t.liveStorage(name);
  }
  // Without recording there is nothing to save; inside another checkpoint's first
  // forward the outer one already recomputes this one.
  if (!engine.gradEnabled || engine.checkpointProbe !== null) return fn(inputs);
  const preserveRng = options.preserveRngState ?? true;
  const rng = getRngState();
  const probe = new CheckpointProbe(new Set(inputs), name);
  const out = runScoped(name, fn, inputs, probe);
  if (inputs.includes(out)) {
    throw new Error(`${name}: the checkpointed function returned one of its inputs; return a new tensor`);
  }
  if (!probe.sawGrad || !isFloat(out.dtype)) return out;
  const outShape = out.shape;
  const outDtype = out.dtype;
  const spec: GradientSpec = {
    saveInputs: true,
    saveOutput: false,
    grad(dy, ctx) {
      // Stand-ins for the inputs: leaves whose gradients backpropagateInto returns.
      const leaves = ctx.inputs.map((t, i) => {
        const leaf = engine.shareStorage(t, t.shape, name);
        if (ctx.needsGrad[i]) leaf.requiresGrad = true;
        return leaf;
      });
      let y: Tensor | null = null;
      try {
        const backwardRng = getRngState();
        if (preserveRng) setRngState(rng);
        try {
          y = runScoped(name, fn, leaves, null);
        } finally {
          if (preserveRng) setRngState(backwardRng);
        }
        if (!shapesEqual(y.shape, outShape) || y.dtype !== outDtype) {
          throw new Error(`${name}: the recomputation returned ${fmtShape(y.shape)} ${y.dtype}, the forward ${fmtShape(outShape)} ${outDtype}; the function must be deterministic`);
        }
        return engine.backpropagateInto(y, dy, leaves);
      } finally {
        y?.dispose();
        for (const l of leaves) l.dispose();
      }
    },
  };
  engine.recordNode(name, inputs, {}, spec, out);
  return out;
}

/**
 * `fn(inputs)` in its own scope (its intermediates are disposed at return), with grad
 * mode on and `probe` watching (null: recording, as in the recomputation).
 */
function runScoped(name: string, fn: (inputs: readonly Tensor[]) => Tensor, inputs: readonly Tensor[], probe: CheckpointProbe | null): Tensor {
  const prevProbe = engine.checkpointProbe;
  const prevGrad = engine.gradEnabled;
  engine.checkpointProbe = probe;
  engine.gradEnabled = true;
  engine.startScope();
  let out: unknown;
  try {
    out = fn(inputs);
  } finally {
    engine.checkpointProbe = prevProbe;
    engine.gradEnabled = prevGrad;
    // A non-tensor result keeps nothing: everything fn made is disposed before the error.
    engine.endScope(out instanceof Tensor ? out : undefined);
  }
  if (!(out instanceof Tensor)) {
    throw new TypeError(`${name}: the checkpointed function must return a tensor, got ${out === null ? 'null' : typeof out}`);
  }
  return out;
}
