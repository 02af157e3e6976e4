import { ShapeError, fmtShape } from '../errors.js';
import { broadcastShapes } from '../shape.js';

/**
 * Validates batched matmul operands and returns the problem size.
 * `a` is `[..., m, k]` (`[..., k, m]` when `transposeA`), `b` is `[..., k, n]`
 * (`[..., n, k]` when `transposeB`); batch dims broadcast.
 */
export function matmulShapes(
  a: readonly number[],
  b: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
): { m: number; k: number; n: number; batchShape: number[] } {
  if (a.length < 2 || b.length < 2) {
    throw new ShapeError(`matmul: operands need rank >= 2, got ${fmtShape(a)} and ${fmtShape(b)}`);
  }
  const [a0, a1] = a.slice(-2);
  const [b0, b1] = b.slice(-2);
  const m = transposeA ? a1 : a0;
  const k = transposeA ? a0 : a1;
  const kb = transposeB ? b1 : b0;
  const n = transposeB ? b0 : b1;
  if (k !== kb) {
    throw new ShapeError(
      `matmul: inner dims differ: ${fmtShape(a)}${transposeA ? '^T' : ''} x ${fmtShape(b)}${transposeB ? '^T' : ''} (${k} vs ${kb})`,
    );
  }
  const batchShape = broadcastShapes('matmul', a.slice(0, -2), b.slice(0, -2));
  return { m, k, n, batchShape };
}
