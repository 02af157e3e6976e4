import { type TensorData, viewHostArray } from '../../dtype.js';
import type { Tensor } from '../../tensor.js';
import type { CpuStorage } from './cpu-backend.js';

/** Typed-array view of a cpu tensor's elements (no copy). */
export function cpuData(t: Tensor): TensorData {
  const s = t.liveStorage('cpu kernel') as CpuStorage;
  return viewHostArray(t.dtype, s.buffer, t.size);
}
