/**
 * cpu reference kernel of the in-place op `Accumulate` (`dst[region] += src`). Each
 * element is `dst + src` rounded once to the dtype, as the cpu `Add` kernel computes it
 * (f16 widened to f32, summed, rounded to f32 and then to f16, as `widenF16` does).
 */
import { registerInPlaceKernel } from '../../../registry.js';
import { f16BitsToF32, f32ToF16Bits } from '../../../math.js';
import { checkAccumulate } from '../../../ops/accumulate.js';
import { cpuData } from '../cpu-data.js';

/** Registers the cpu kernel of `Accumulate`. */
export function registerCpuAccumulateKernel(): void {
  registerInPlaceKernel('Accumulate', 'cpu', (args) => {
    const { offset, strides } = checkAccumulate(args);
    const { dst, src } = args;
    const d = cpuData(dst);
    const s = cpuData(src);
    const shape = src.shape;
    const r = shape.length;
    const half = dst.dtype === 'f16';
    // An odometer over src's row-major index keeps the dst offset incrementally.
    const idx = new Array<number>(r).fill(0);
    let o = offset;
    for (let i = 0; i < s.length; i++) {
      if (half) d[o] = f32ToF16Bits(Math.fround(f16BitsToF32(d[o]) + f16BitsToF32(s[i])));
      else d[o] = d[o] + s[i];
      for (let k = r - 1; k >= 0; k--) {
        if (++idx[k] < shape[k]) {
          o += strides[k];
          break;
        }
        o -= (shape[k] - 1) * strides[k];
        idx[k] = 0;
      }
    }
  });
}
