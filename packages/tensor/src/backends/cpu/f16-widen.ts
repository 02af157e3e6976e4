import type { CpuKernelContext } from '../../kernel-context.js';
import type { OpName } from '../../op-names.js';
import type { KernelFn } from '../../registry.js';
import type { Tensor } from '../../tensor.js';

/** Options of {@link widenF16}. */
export interface WidenF16Options {
  /**
   * Keep an f32 output as f32 instead of rounding it to f16 (cross-entropy's per-row
   * losses: the loss of an f16 model is f32, as under PyTorch's autocast).
   */
  keepF32Output?: boolean;
}

/**
 * The cpu reference semantics of an f16 kernel with f32 accumulation, for any cpu
 * kernel written for f32: f16 inputs are widened to f32 (exact), the f32 kernel runs
 * (it accumulates in float64 and rounds each output to f32), and an f32 output is
 * rounded to f16 (nearest even). A webgpu f16 kernel widens the same way, accumulates
 * in f32 and rounds once to f16, so the two agree bitwise where no sum is formed and
 * within one f16 ulp where the f32 accumulation order differs (its error is far below
 * half an f16 ulp except next to a rounding boundary). Kernels without f16 inputs run
 * unchanged.
 *
 * Shapes: those of the wrapped kernel.
 */
export function widenF16<K extends OpName>(kernel: KernelFn<K, 'cpu'>, opts: WidenF16Options = {}): KernelFn<K, 'cpu'> {
  return (inputs, attrs, ctx: CpuKernelContext): Tensor => {
    if (!inputs.some((t) => t.dtype === 'f16')) return kernel(inputs, attrs, ctx);
    const temps: Tensor[] = [];
    try {
      const wide = inputs.map((t) => {
        if (t.dtype !== 'f16') return t;
        const w = ctx.run('Cast', [t], { dtype: 'f32' });
        temps.push(w);
        return w;
      });
      const out = kernel(wide, attrs, ctx);
      if (out.dtype !== 'f32' || opts.keepF32Output) return out;
      temps.push(out);
      return ctx.run('Cast', [out], { dtype: 'f16' });
    } finally {
      for (const t of temps) t.dispose();
    }
  };
}
