/**
 * The gradient of the fused linear + cross-entropy: `g = dy (softmax(logits) - onehot)`
 * per row (0 at ignored rows), `dHidden = g @ weight`, `dWeight = g^T @ hidden`,
 * `dBias = sum_rows(g)`. A backend with the `LinearCrossEntropyBackward` in-place kernel
 * recomputes the logits chunk by chunk from the saved statistics and never holds `g`
 * whole; elsewhere the gradient is written with ops over the whole logits.
 */
import { engine } from '../engine.js';
import { hasInPlaceKernel, registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';
import { linearLogits } from './linear-cross-entropy.js';

/** Arguments of the `LinearCrossEntropyBackward` in-place op. */
export interface LinearCrossEntropyBackwardArgs {
  /** Upstream gradient of the per-row losses `[N]` (f32; the mean's `1 / count` is in it). */
  readonly dy: Tensor;
  /** `[N, D]`. */
  readonly hidden: Tensor;
  /** `[V, D]`. */
  readonly weight: Tensor;
  /** i32 `[N]`. */
  readonly labels: Tensor;
  /** `[2, N]` f32 from `LinearCrossEntropyStats`: row 0 the logsumexp per row. */
  readonly stats: Tensor;
  /** `[V]`, or null. */
  readonly bias: Tensor | null;
  readonly ignoreIndex: number;
  /** Weight rows per chunk (0: the kernel's choice). */
  readonly chunkSize: number;
  /** Which gradients to form (the others come back null and cost nothing). */
  readonly needs: { readonly hidden: boolean; readonly weight: boolean; readonly bias: boolean };
}

/** Gradients of the fused linear + cross-entropy, in their inputs' dtypes (null where not asked). */
export interface LinearCrossEntropyGrads {
  /** `[N, D]`. */
  hidden: Tensor | null;
  /** `[V, D]`. */
  weight: Tensor | null;
  /** `[V]`. */
  bias: Tensor | null;
}

declare module '../registry.js' {
  interface InPlaceOps {
    /** The chunked backward of `LinearCrossEntropy`: allocates and returns the asked gradients. */
    LinearCrossEntropyBackward: { args: LinearCrossEntropyBackwardArgs; result: LinearCrossEntropyGrads };
  }
}

/** The same gradients with ops over the whole `[N, V]` logits (backends without the chunked kernel). */
function gradsWithOps(a: LinearCrossEntropyBackwardArgs): LinearCrossEntropyGrads {
  const logits = linearLogits(a.hidden, a.weight, a.bias ?? undefined);
  const g = engine.runOp('CrossEntropyGrad', [a.dy, logits, a.labels], { ignoreIndex: a.ignoreIndex });
  return {
    hidden: a.needs.hidden ? matmul(g, a.weight) : null,
    weight: a.needs.weight ? matmul(g, a.hidden, { transposeA: true }) : null,
    bias: a.needs.bias ? sum(g, 0) : null,
  };
}

/** Registers the gradient of `LinearCrossEntropy` (inputs `[hidden, weight, labels, stats, bias?]`). */
export function registerLinearCrossEntropyGradient(): void {
  registerGradient('LinearCrossEntropy', {
    saveInputs: true,
    saveOutput: false,
    grad: (dy, { attrs: { ignoreIndex, chunkSize }, inputs: [hidden, weight, labels, stats, bias], needsGrad }) => {
      const args: LinearCrossEntropyBackwardArgs = {
        dy,
        hidden,
        weight,
        labels,
        stats,
        bias: bias ?? null,
        ignoreIndex,
        chunkSize,
        needs: { hidden: needsGrad[0], weight: needsGrad[1], bias: bias !== undefined && needsGrad[4] },
      };
      const backend = hidden.backend;
      const g = hasInPlaceKernel('LinearCrossEntropyBackward', backend.name) ? engine.runInPlace('LinearCrossEntropyBackward', args, backend) : gradsWithOps(args);
      return [g.hidden, g.weight, null, null, ...(bias ? [g.bias] : [])];
    },
  });
}
