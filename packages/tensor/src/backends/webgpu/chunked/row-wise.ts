/**
 * Ops that treat rows independently (elementwise ops, casts, cross-entropy over rows of
 * logits) on tensors split in row chunks: the op's own kernel runs once per chunk, on
 * chunk views of the chunked operands and row slices of the others, and each result is
 * written into its rows of the output.
 */
import { ChunkedTensorError } from '../../../errors.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import type { Tensor } from '../../../tensor.js';
import { engine } from '../../../engine.js';
import { addCuts, blockOf, rowElementsOf, rowsOf, segments, writeBlock } from './blocks.js';

/** How one operand of a row-wise op is handed to each chunk's kernel. */
export type RowOperand =
  /** Rows of the matrix `[rows, last dim]` (the output's rows). */
  | 'rows'
  /** One element per row (`[rows]`: labels, per-row losses and their gradients). */
  | 'perRow'
  /** The same whole tensor for every chunk (a scalar, a `[last dim]` row broadcast over rows). */
  | 'whole';

/**
 * Runs `run(operands of one chunk of rows)` for every chunk of rows of the chunked
 * operands or output, writing each result into `out` (`outKind` says whether `out` is
 * `[rows, L]` or one element per row). `kinds[i]` says how operand `i` is split. On an
 * error `out` is disposed, so nothing stays allocated.
 */
export function runByRows(
  ctx: WebGpuKernelContext,
  op: string,
  inputs: readonly Tensor[],
  kinds: readonly RowOperand[],
  out: Tensor,
  outKind: 'rows' | 'perRow',
  run: (parts: Tensor[]) => Tensor,
): Tensor {
  try {
    const rows = outKind === 'rows' ? rowsOf(out) : out.size;
    const cuts = new Set([0, rows]);
    addCuts(cuts, ctx.chunks(out));
    inputs.forEach((t, i) => {
      if (kinds[i] === 'rows') addCuts(cuts, ctx.chunks(t));
      else if (ctx.chunks(t)) throw new ChunkedTensorError(op, t.shape, t.dtype, t.liveStorage(op).bindings ?? 1, "only operands of the output's rows may be split");
    });
    for (const [r0, n] of segments(cuts)) {
      const parts = inputs.map((t, i) => (kinds[i] === 'whole' ? null : kinds[i] === 'rows' ? blockOf(ctx, t, r0, n, 0, rowElementsOf(t)) : perRowSlice(ctx, t, r0, n)));
      try {
        const res = run(parts.map((p, i) => p ?? inputs[i]));
        try {
          if (outKind === 'perRow') writeBlock(ctx, out, 0, r0, res);
          else writeBlock(ctx, out, r0, 0, res);
        } finally {
          res.dispose();
        }
      } finally {
        for (const p of parts) p?.dispose();
      }
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** Elements `[r0, r0 + n)` of a one-element-per-row tensor, as `[n]`. */
function perRowSlice(ctx: WebGpuKernelContext, t: Tensor, r0: number, n: number): Tensor {
  if (r0 === 0 && n === t.size) return engine.shareStorage(t, [n], 'chunked rows');
  const b = blockOf(ctx, t, 0, 1, r0, n);
  const flat = engine.shareStorage(b, [n], 'chunked rows');
  b.dispose();
  return flat;
}
