/**
 * cpu reference kernels of the LLaMA-family fusions: `SwiGLU` and its one-pass backward
 * (`SwiGLUBackward`), `Rope` / `RopeGrad` on heads, and residual add + RMS norm
 * (`AddRmsNorm`). Loops in float64 over the inputs' values; f16 inputs are widened to
 * f32 and each output rounded once to f16, as the webgpu kernels do.
 */
import type { CpuKernelContext } from '../../../kernel-context.js';
import { registerInPlaceKernel, registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { widenF16 } from '../f16-widen.js';
import { cpuData } from '../cpu-data.js';

const silu = (g: number) => g / (1 + Math.exp(-g));
/** d silu / dg = s (1 + g (1 - s)), s = sigmoid(g). */
const siluGrad = (g: number) => {
  const s = 1 / (1 + Math.exp(-g));
  return s * (1 + g * (1 - s));
};

/**
 * Runs `fn` on f32 copies of f16 inputs and rounds its outputs to f16 (one rounding
 * each); other dtypes run as they are.
 */
function widened<T extends Record<string, Tensor>>(ctx: CpuKernelContext, inputs: Tensor[], fn: (xs: Tensor[]) => T): T {
  if (!inputs.some((t) => t.dtype === 'f16')) return fn(inputs);
  const wide = inputs.map((t) => ctx.run('Cast', [t], { dtype: 'f32' }));
  try {
    const outs = fn(wide);
    const half = {} as Record<string, Tensor>;
    for (const [k, t] of Object.entries(outs)) {
      half[k] = ctx.run('Cast', [t], { dtype: 'f16' });
      t.dispose();
    }
    return half as T;
  } finally {
    for (const t of wide) t.dispose();
  }
}

/**
 * The table row of head element `(b, t)`: tables `[T, Dh]` serve every batch row,
 * `[B, T, Dh]` one each. Returns the offset of the row's first element.
 */
function tableRow(tab: Tensor, b: number, t: number, tokens: number, dh: number): number {
  return (tab.rank === 3 ? b * tokens + t : t) * dh;
}

/** Registers the cpu kernels of this file. */
export function registerCpuLlamaFusedKernels(): void {
  // out = silu(gate) * up; inputs [gate, up].
  registerKernel(
    'SwiGLU',
    'cpu',
    widenF16((inputs, _a, ctx) => {
      const [g, u] = inputs;
      const out = ctx.output(g.shape, g.dtype, 'swiglu');
      const [gv, uv, ov] = [cpuData(g), cpuData(u), cpuData(out)];
      for (let i = 0; i < ov.length; i++) ov[i] = silu(gv[i]) * uv[i];
      return out;
    }),
  );

  registerInPlaceKernel('SwiGLUBackward', 'cpu', ({ dy, gate, up }, ctx) =>
    widened(ctx, [dy, gate, up], ([d, g, u]) => {
      const dg = ctx.output(g.shape, g.dtype, 'swigluGrad');
      const du = ctx.output(g.shape, g.dtype, 'swigluGrad');
      const [dv, gv, uv, dgv, duv] = [cpuData(d), cpuData(g), cpuData(u), cpuData(dg), cpuData(du)];
      for (let i = 0; i < dv.length; i++) {
        dgv[i] = dv[i] * uv[i] * siluGrad(gv[i]);
        duv[i] = dv[i] * silu(gv[i]);
      }
      return { gate: dg, up: du };
    }),
  );

  // out[b, h, t, j] = x[b, t, h, j] cos[j] + rotate_half(x)[j] sin[j]; inputs [x [B, T, H, Dh], cos, sin].
  registerKernel(
    'Rope',
    'cpu',
    widenF16((inputs, _a, ctx) => {
      const [x, c, s] = inputs;
      const [bs, ts, hs, dh] = x.shape;
      const half = dh / 2;
      const out = ctx.output([bs, hs, ts, dh], x.dtype, 'rope');
      const [xv, cv, sv, ov] = [cpuData(x), cpuData(c), cpuData(s), cpuData(out)];
      for (let b = 0; b < bs; b++)
        for (let t = 0; t < ts; t++) {
          const tr = tableRow(c, b, t, ts, dh);
          for (let h = 0; h < hs; h++) {
            const xi = ((b * ts + t) * hs + h) * dh;
            const oi = ((b * hs + h) * ts + t) * dh;
            for (let j = 0; j < dh; j++) {
              const rot = j < half ? -xv[xi + j + half] : xv[xi + j - half];
              ov[oi + j] = xv[xi + j] * cv[tr + j] + rot * sv[tr + j];
            }
          }
        }
      return out;
    }),
  );

  // dx[b, t, h, j] = dy[b, h, t, j] cos[j] + (j < Dh/2 ? dy[j + Dh/2] sin[j + Dh/2] : -dy[j - Dh/2] sin[j - Dh/2]).
  registerKernel(
    'RopeGrad',
    'cpu',
    widenF16((inputs, _a, ctx) => {
      const [dy, c, s] = inputs;
      const [bs, hs, ts, dh] = dy.shape;
      const half = dh / 2;
      const out = ctx.output([bs, ts, hs, dh], dy.dtype, 'ropeGrad');
      const [dv, cv, sv, ov] = [cpuData(dy), cpuData(c), cpuData(s), cpuData(out)];
      for (let b = 0; b < bs; b++)
        for (let t = 0; t < ts; t++) {
          const tr = tableRow(c, b, t, ts, dh);
          for (let h = 0; h < hs; h++) {
            const di = ((b * hs + h) * ts + t) * dh;
            const oi = ((b * ts + t) * hs + h) * dh;
            for (let j = 0; j < dh; j++) {
              const rot = j < half ? dv[di + j + half] * sv[tr + j + half] : -dv[di + j - half] * sv[tr + j - half];
              ov[oi + j] = dv[di + j] * cv[tr + j] + rot;
            }
          }
        }
      return out;
    }),
  );

  registerInPlaceKernel('AddRmsNorm', 'cpu', ({ x, residual, weight, eps }, ctx) => {
    // f16: the sum is rounded to f16 before the norm reads it, as the unfused pair does.
    if (x.dtype === 'f16') {
      const sum = ctx.run('Add', [x, residual], {});
      return { sum, normed: ctx.run('RmsNorm', [sum, weight], { eps }) };
    }
    const sum = ctx.output(x.shape, x.dtype, 'addRmsNorm');
    const normed = ctx.output(x.shape, x.dtype, 'addRmsNorm');
    const [xv, rv, wv, sv, nv] = [cpuData(x), cpuData(residual), cpuData(weight), cpuData(sum), cpuData(normed)];
    const width = x.shape[x.rank - 1];
    const rows = width === 0 ? 0 : x.size / width;
    for (let r = 0; r < rows; r++) {
      const o = r * width;
      let ms = 0;
      for (let j = 0; j < width; j++) {
        sv[o + j] = xv[o + j] + rv[o + j];
        ms += sv[o + j] ** 2; // the stored (rounded) sum
      }
      const rstd = 1 / Math.sqrt(ms / width + eps);
      for (let j = 0; j < width; j++) nv[o + j] = sv[o + j] * rstd * wv[j];
    }
    return { sum, normed };
  });
}
