import type { Tensor } from '../../../tensor.js';
import { IndexError, ShapeError, fmtShape } from '../../../errors.js';
import { shapesEqual } from '../../../shape.js';
import type { CpuKernelContext } from '../../../kernel-context.js';
import type { OpName } from '../../../op-names.js';
import { type KernelFn, registerKernel } from '../../../registry.js';
import { type WidenF16Options, widenF16 } from '../f16-widen.js';
import { cpuData } from '../cpu-data.js';

/** Mean and `1 / sqrt(var + eps)` of the `width` elements at `o` (layer norm's row statistics). */
function layerNormStats(xv: ArrayLike<number>, o: number, width: number, eps: number): { mean: number; rstd: number } {
  let mean = 0;
  for (let j = 0; j < width; j++) mean += xv[o + j];
  mean /= width;
  let v = 0;
  for (let j = 0; j < width; j++) v += (xv[o + j] - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(v / width + eps) };
}

/** `1 / sqrt(mean(x^2) + eps)` of the `width` elements at `o` (RMS norm's row statistic). */
function rmsNormRstd(xv: ArrayLike<number>, o: number, width: number, eps: number): number {
  let ms = 0;
  for (let j = 0; j < width; j++) ms += xv[o + j] ** 2;
  return 1 / Math.sqrt(ms / width + eps);
}

/** Rows of the last axis: `count` rows of `width` elements. */
function rowsOf(shape: readonly number[]): { count: number; width: number } {
  const width = shape[shape.length - 1] ?? 1;
  return { count: width === 0 ? 0 : shape.reduce((p, d) => p * d, 1) / width, width };
}

/** Registers the cpu kernels of this file. */
/** Registers a fused cpu kernel with the f16 reference semantics of {@link widenF16}. */
function registerFused<K extends OpName>(op: K, fn: KernelFn<K, 'cpu'>, opts?: WidenF16Options): void {
  registerKernel(op, 'cpu', widenF16(fn, opts));
}

export function registerCpuFusedKernels(): void {
  registerFused('Softmax', (inputs, _a, ctx) => softmaxLike(inputs[0], ctx, false));
  registerFused('LogSoftmax', (inputs, _a, ctx) => softmaxLike(inputs[0], ctx, true));

  function softmaxLike(x: Tensor, ctx: CpuKernelContext, log: boolean) {
    const out = ctx.output(x.shape, x.dtype, log ? 'logSoftmax' : 'softmax');
    const xv = cpuData(x);
    const ov = cpuData(out);
    const { count, width } = rowsOf(x.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      let max = -Infinity;
      for (let j = 0; j < width; j++) max = Math.max(max, xv[o + j]);
      let sum = 0;
      for (let j = 0; j < width; j++) sum += Math.exp(xv[o + j] - max);
      const logSum = Math.log(sum);
      for (let j = 0; j < width; j++) ov[o + j] = log ? xv[o + j] - max - logSum : Math.exp(xv[o + j] - max) / sum;
    }
    return out;
  }

  // dx = y * (dy - sum(dy * y)); inputs [dy, y].
  registerFused('SoftmaxGrad', (inputs, _a, ctx) => {
    const [dy, y] = inputs;
    const out = ctx.output(y.shape, y.dtype, 'softmaxGrad');
    const [dv, yv, ov] = [cpuData(dy), cpuData(y), cpuData(out)];
    const { count, width } = rowsOf(y.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      let dot = 0;
      for (let j = 0; j < width; j++) dot += dv[o + j] * yv[o + j];
      for (let j = 0; j < width; j++) ov[o + j] = yv[o + j] * (dv[o + j] - dot);
    }
    return out;
  });

  // dx = dy - exp(y) * sum(dy); inputs [dy, y = logSoftmax(x)].
  registerFused('LogSoftmaxGrad', (inputs, _a, ctx) => {
    const [dy, y] = inputs;
    const out = ctx.output(y.shape, y.dtype, 'logSoftmaxGrad');
    const [dv, yv, ov] = [cpuData(dy), cpuData(y), cpuData(out)];
    const { count, width } = rowsOf(y.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      let sum = 0;
      for (let j = 0; j < width; j++) sum += dv[o + j];
      for (let j = 0; j < width; j++) ov[o + j] = dv[o + j] - Math.exp(yv[o + j]) * sum;
    }
    return out;
  });

  // loss[n] = logsumexp(x[n]) - x[n, label[n]], 0 where label == ignoreIndex; inputs [logits [N,C], labels [N]].
  registerFused('CrossEntropy', (inputs, { ignoreIndex }, ctx) => {
    const [x, labels] = inputs;
    const [n, c] = x.shape;
    const out = ctx.output([n], x.dtype, 'crossEntropy');
    const [xv, lv, ov] = [cpuData(x), cpuData(labels), cpuData(out)];
    for (let r = 0; r < n; r++) {
      const label = lv[r];
      if (label === ignoreIndex) {
        ov[r] = 0;
        continue;
      }
      if (label < 0 || label >= c) {
        out.dispose();
        throw new IndexError('crossEntropy', x.shape, label, r, c, 'classes', `; ignoreIndex ${ignoreIndex}`);
      }
      let max = -Infinity;
      for (let j = 0; j < c; j++) max = Math.max(max, xv[r * c + j]);
      let sum = 0;
      for (let j = 0; j < c; j++) sum += Math.exp(xv[r * c + j] - max);
      ov[r] = max + Math.log(sum) - xv[r * c + label];
    }
    return out;
  }, { keepF32Output: true });

  // dx[n] = dy[n] * (softmax(x[n]) - onehot(label[n])), 0 at ignored rows; inputs [dy [N], logits, labels].
  registerFused('CrossEntropyGrad', (inputs, { ignoreIndex }, ctx) => {
    const [dy, x, labels] = inputs;
    const [n, c] = x.shape;
    const out = ctx.output(x.shape, x.dtype, 'crossEntropyGrad');
    const [dv, xv, lv, ov] = [cpuData(dy), cpuData(x), cpuData(labels), cpuData(out)];
    for (let r = 0; r < n; r++) {
      const label = lv[r];
      if (label === ignoreIndex) {
        ov.fill(0, r * c, (r + 1) * c);
        continue;
      }
      let max = -Infinity;
      for (let j = 0; j < c; j++) max = Math.max(max, xv[r * c + j]);
      let sum = 0;
      for (let j = 0; j < c; j++) sum += Math.exp(xv[r * c + j] - max);
      for (let j = 0; j < c; j++) ov[r * c + j] = dv[r] * (Math.exp(xv[r * c + j] - max) / sum - (j === label ? 1 : 0));
    }
    return out;
  });

  // y = (x - mean) * rstd * w + b over the last axis; inputs [x, w, b].
  registerFused('LayerNorm', (inputs, { eps }, ctx) => {
    const [x, w, b] = inputs;
    const out = ctx.output(x.shape, x.dtype, 'layerNorm');
    const [xv, wv, bv, ov] = [cpuData(x), cpuData(w), cpuData(b), cpuData(out)];
    const { count, width } = rowsOf(x.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      const { mean, rstd } = layerNormStats(xv, o, width, eps);
      for (let j = 0; j < width; j++) ov[o + j] = (xv[o + j] - mean) * rstd * wv[j] + bv[j];
    }
    return out;
  });

  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; inputs [dy, x, w].
  registerFused('LayerNormGrad', (inputs, { eps }, ctx) => {
    const [dy, x, w] = inputs;
    const out = ctx.output(x.shape, x.dtype, 'layerNormGrad');
    const [dv, xv, wv, ov] = [cpuData(dy), cpuData(x), cpuData(w), cpuData(out)];
    const { count, width } = rowsOf(x.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      const { mean, rstd } = layerNormStats(xv, o, width, eps);
      let gMean = 0;
      let gxMean = 0;
      for (let j = 0; j < width; j++) {
        const g = dv[o + j] * wv[j];
        gMean += g;
        gxMean += g * (xv[o + j] - mean) * rstd;
      }
      gMean /= width;
      gxMean /= width;
      for (let j = 0; j < width; j++) {
        const xhat = (xv[o + j] - mean) * rstd;
        ov[o + j] = rstd * (dv[o + j] * wv[j] - gMean - xhat * gxMean);
      }
    }
    return out;
  });

  // dw = sum over rows of dy * xhat (layer norm: xhat = (x - mean) * rstd; RMS norm: x * rstd); inputs [dy, x] -> [D].
  for (const op of ['LayerNormWeightGrad', 'RmsNormWeightGrad'] as const) {
    registerFused(op, (inputs, { eps }, ctx) => {
      const [dy, x] = inputs;
      if (x.rank < 1 || !shapesEqual(dy.shape, x.shape)) throw new ShapeError(`${op}: dy ${fmtShape(dy.shape)} and x ${fmtShape(x.shape)} must have one shape [..., D]`);
      const { count, width } = rowsOf(x.shape);
      const out = ctx.output([width], x.dtype, op);
      const [dv, xv, ov] = [cpuData(dy), cpuData(x), cpuData(out)];
      const acc = new Float64Array(width);
      for (let r = 0; r < count; r++) {
        const o = r * width;
        const { mean, rstd } = op === 'LayerNormWeightGrad' ? layerNormStats(xv, o, width, eps) : { mean: 0, rstd: rmsNormRstd(xv, o, width, eps) };
        for (let j = 0; j < width; j++) acc[j] += dv[o + j] * ((xv[o + j] - mean) * rstd);
      }
      ov.set(acc);
      return out;
    });
  }

  // y = x * rsqrt(mean(x^2) + eps) * w; inputs [x, w].
  registerFused('RmsNorm', (inputs, { eps }, ctx) => {
    const [x, w] = inputs;
    const out = ctx.output(x.shape, x.dtype, 'rmsNorm');
    const [xv, wv, ov] = [cpuData(x), cpuData(w), cpuData(out)];
    const { count, width } = rowsOf(x.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      const rstd = rmsNormRstd(xv, o, width, eps);
      for (let j = 0; j < width; j++) ov[o + j] = xv[o + j] * rstd * wv[j];
    }
    return out;
  });

  // dx = rstd * (g - xhat * mean(g * xhat)) with g = dy * w, xhat = x * rstd; inputs [dy, x, w].
  registerFused('RmsNormGrad', (inputs, { eps }, ctx) => {
    const [dy, x, w] = inputs;
    const out = ctx.output(x.shape, x.dtype, 'rmsNormGrad');
    const [dv, xv, wv, ov] = [cpuData(dy), cpuData(x), cpuData(w), cpuData(out)];
    const { count, width } = rowsOf(x.shape);
    for (let r = 0; r < count; r++) {
      const o = r * width;
      const rstd = rmsNormRstd(xv, o, width, eps);
      let gx = 0;
      for (let j = 0; j < width; j++) gx += dv[o + j] * wv[j] * xv[o + j] * rstd;
      gx /= width;
      for (let j = 0; j < width; j++) ov[o + j] = rstd * (dv[o + j] * wv[j] - xv[o + j] * rstd * gx);
    }
    return out;
  });
}
