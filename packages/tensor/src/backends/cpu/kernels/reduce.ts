import type { ReduceAttrs } from '../../../op-names.js';
import { registerKernel } from '../../../registry.js';
import { stridesOf } from '../../../shape.js';
import type { Tensor } from '../../../tensor.js';
import { cpuData } from '../cpu-data.js';
import { widenF16 } from '../f16-widen.js';

/** Output shape of a reduction of `shape` over `axes`. */
export function reducedShape(shape: readonly number[], { axes, keepDims }: ReduceAttrs): number[] {
  return keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/**
 * Calls `visit(outIndex, inIndices)` for each output element with the flat input
 * indices of the elements it reduces, in row-major order of the reduced axes.
 */
function forEachReduction(shape: readonly number[], axes: readonly number[], visit: (o: number, read: (k: number) => number, count: number) => void): void {
  const strides = stridesOf(shape);
  const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const keptShape = kept.map((i) => shape[i]);
  const redShape = axes.map((i) => shape[i]);
  const redStrides = axes.map((i) => strides[i]);
  const redCount = redShape.reduce((a, b) => a * b, 1);
  const outCount = keptShape.reduce((a, b) => a * b, 1);
  // Offsets of the reduced block, relative to its first element.
  const redOffsets = new Array<number>(redCount);
  for (let k = 0; k < redCount; k++) {
    let rem = k;
    let off = 0;
    for (let d = redShape.length - 1; d >= 0; d--) {
      off += (rem % redShape[d]) * redStrides[d];
      rem = Math.floor(rem / redShape[d]);
    }
    redOffsets[k] = off;
  }
  for (let o = 0; o < outCount; o++) {
    let rem = o;
    let base = 0;
    for (let d = kept.length - 1; d >= 0; d--) {
      base += (rem % keptShape[d]) * strides[kept[d]];
      rem = Math.floor(rem / keptShape[d]);
    }
    visit(o, (k) => base + redOffsets[k], redCount);
  }
}

/** Registers the cpu kernels of this file. */
export function registerCpuReduceKernels(): void {
  function reduceKernel(name: 'Sum' | 'Max' | 'ArgMax') {
    registerKernel(name, 'cpu', widenF16((inputs, attrs, ctx) => {
      const x: Tensor = inputs[0];
      const out = ctx.output(reducedShape(x.shape, attrs), name === 'ArgMax' ? 'i32' : x.dtype, name);
      const xv = cpuData(x);
      const ov = cpuData(out);
      forEachReduction(x.shape, attrs.axes, (o, at, count) => {
        if (name === 'Sum') {
          let s = 0;
          for (let k = 0; k < count; k++) s += xv[at(k)];
          ov[o] = s;
        } else {
          // NaN propagates, as in PyTorch; argmax returns the first maximum.
          let best = -Infinity;
          let arg = 0;
          for (let k = 0; k < count; k++) {
            const v = xv[at(k)];
            if (v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
              best = v;
              arg = k;
            }
          }
          ov[o] = name === 'Max' ? (count === 0 ? -Infinity : best) : arg;
        }
      });
      return out;
    }));
  }
  reduceKernel('Sum');
  reduceKernel('Max');
  reduceKernel('ArgMax');

  registerKernel('CumSum', 'cpu', widenF16((inputs, { axis }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, x.dtype, 'cumsum');
    const xv = cpuData(x);
    const ov = cpuData(out);
    const n = x.shape[axis];
    const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let s = 0;
        for (let k = 0; k < n; k++) {
          const at = (o * n + k) * inner + i;
          s += xv[at];
          ov[at] = s;
        }
      }
    }
    return out;
  }));
}
