import { f16BitsToF32, f32ToF16Bits } from '../../../math.js';
import { IndexError } from '../../../errors.js';
import { registerKernel } from '../../../registry.js';
import { cpuData } from '../cpu-data.js';
import { widenF16 } from '../f16-widen.js';

/** Registers the cpu kernels of this file. */
export function registerCpuLayoutKernels(): void {
  registerKernel('StridedCopy', 'cpu', (inputs, a, ctx) => {
    const x = inputs[0];
    const out = ctx.output(a.outShape, x.dtype, 'stridedCopy');
    const xv = cpuData(x);
    const ov = cpuData(out);
    if (a.fill !== 0 || out.size !== a.shape.reduce((p, d) => p * d, 1)) ov.fill(x.dtype === 'f16' ? f32ToF16Bits(a.fill) : a.fill);
    const rank = a.shape.length;
    const total = a.shape.reduce((p, d) => p * d, 1);
    const coord = new Array<number>(rank).fill(0);
    let i = a.inOffset;
    let o = a.outOffset;
    for (let n = 0; n < total; n++) {
      ov[o] = xv[i];
      for (let d = rank - 1; d >= 0; d--) {
        coord[d]++;
        i += a.inStrides[d];
        o += a.outStrides[d];
        if (coord[d] < a.shape[d]) break;
        i -= a.inStrides[d] * a.shape[d];
        o -= a.outStrides[d] * a.shape[d];
        coord[d] = 0;
      }
    }
    return out;
  });

  registerKernel('Cast', 'cpu', (inputs, { dtype }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, dtype, 'cast');
    const xv = cpuData(x);
    const ov = cpuData(out);
    const read = x.dtype === 'f16' ? (i: number) => f16BitsToF32(xv[i]) : (i: number) => xv[i];
    for (let i = 0; i < xv.length; i++) {
      const v = read(i);
      if (dtype === 'f16') ov[i] = f32ToF16Bits(v);
      else if (dtype === 'bool') ov[i] = v !== 0 ? 1 : 0;
      else if (dtype === 'i32' || dtype === 'u32') ov[i] = Number.isFinite(v) ? Math.trunc(v) : 0;
      else ov[i] = v;
    }
    return out;
  });

  registerKernel('Gather', 'cpu', (inputs, _a, ctx) => {
    const [x, idx] = inputs;
    const rowSize = x.shape.slice(1).reduce((p, d) => p * d, 1);
    const out = ctx.output([...idx.shape, ...x.shape.slice(1)], x.dtype, 'gather');
    const xv = cpuData(x);
    const iv = cpuData(idx);
    const ov = cpuData(out);
    for (let r = 0; r < iv.length; r++) {
      const row = iv[r];
      if (row < 0 || row >= x.shape[0]) {
        out.dispose();
        throw new IndexError('gather', x.shape, row, r, x.shape[0], 'rows');
      }
      ov.set(xv.subarray(row * rowSize, (row + 1) * rowSize), r * rowSize);
    }
    return out;
  });

  // f16 sources accumulate in f32 (the webgpu kernel's atomics add f32 bits) and round once.
  registerKernel('ScatterAdd', 'cpu', widenF16((inputs, { numRows }, ctx) => {
    const [src, idx] = inputs;
    const rest = src.shape.slice(idx.rank);
    const rowSize = rest.reduce((p, d) => p * d, 1);
    const out = ctx.output([numRows, ...rest], src.dtype, 'scatterAdd');
    const sv = cpuData(src);
    const iv = cpuData(idx);
    const ov = cpuData(out);
    ov.fill(0);
    for (let r = 0; r < iv.length; r++) {
      const row = iv[r];
      if (row < 0 || row >= numRows) {
        out.dispose();
        throw new IndexError('scatterAdd', [numRows, ...rest], row, r, numRows, 'rows');
      }
      for (let k = 0; k < rowSize; k++) ov[row * rowSize + k] += sv[r * rowSize + k];
    }
    return out;
  }));
}
