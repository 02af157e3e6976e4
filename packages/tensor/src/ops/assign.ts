import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * Copies `src`'s elements into `dst` in place (same shape and dtype; `dst` keeps its
 * identity, storage and memory tag, so optimizers and modules holding it see the new
 * values). Not recorded for autograd. Used to load checkpoints and merge adapters.
 */
export function assign(dst: Tensor, src: Tensor): void {
  const d = dst.liveStorage('assign');
  const s = src.liveStorage('assign');
  if (!shapesEqual(dst.shape, src.shape)) throw new ShapeError(`assign: shapes differ: dst ${fmtShape(dst.shape)}, src ${fmtShape(src.shape)}`);
  if (dst.dtype !== src.dtype) throw new DTypeError(`assign: dtypes differ: dst ${dst.dtype}, src ${src.dtype}`);
  if (d.backend !== s.backend) throw new Error(`assign: dst is on '${d.backend.name}', src on '${s.backend.name}'; move src with toBackend() first`);
  if (d === s) return;
  const bytes = Math.min(d.byteSize, s.byteSize);
  const backend = d.backend as typeof d.backend & { copy?: (a: typeof s, ao: number, b: typeof d, bo: number, n: number) => void };
  if (backend.copy) {
    // WebGPU copies need 4-byte multiples; storage is allocated in 4-byte granules.
    backend.copy(s, 0, d, 0, Math.ceil(bytes / 4) * 4);
  } else {
    // The cpu backend's storage is a plain ArrayBuffer.
    const sb = (s as unknown as { buffer: ArrayBuffer }).buffer;
    const db = (d as unknown as { buffer: ArrayBuffer }).buffer;
    new Uint8Array(db).set(new Uint8Array(sb, 0, bytes));
  }
}
