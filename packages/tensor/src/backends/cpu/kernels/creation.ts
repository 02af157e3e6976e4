import { f32ToF16Bits } from '../../../math.js';
import { dropoutThreshold, philoxNormal, philoxWords, wordToUniform } from '../../../random/philox.js';
import { registerKernel } from '../../../registry.js';
import { cpuData } from '../cpu-data.js';
import { widenF16 } from '../f16-widen.js';

/** Registers the cpu kernels of this file. */
export function registerCpuCreationKernels(): void {
  registerKernel('Fill', 'cpu', (_inputs, { shape, value, dtype }, ctx) => {
    const out = ctx.output(shape, dtype, 'full');
    cpuData(out).fill(dtype === 'f16' ? f32ToF16Bits(value) : value);
    return out;
  });

  registerKernel('Arange', 'cpu', (_inputs, { start, step, size, dtype }, ctx) => {
    const out = ctx.output([size], dtype, 'arange');
    const ov = cpuData(out);
    for (let i = 0; i < size; i++) ov[i] = dtype === 'f16' ? f32ToF16Bits(start + i * step) : start + i * step;
    return out;
  });

  registerKernel('Triu', 'cpu', widenF16((inputs, { diagonal, fill }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, x.dtype, 'triu');
    const [rows, cols] = x.shape.slice(-2);
    const xv = cpuData(x);
    const ov = cpuData(out);
    for (let i = 0; i < xv.length; i++) {
      const col = i % cols;
      const row = Math.floor(i / cols) % rows;
      ov[i] = col - row >= diagonal ? xv[i] : fill;
    }
    return out;
  }));

  registerKernel('Random', 'cpu', (_inputs, { shape, seed, offset, normal }, ctx) => {
    const out = ctx.output(shape, 'f32', normal ? 'randn' : 'rand');
    const ov = cpuData(out);
    if (normal) ov.set(philoxNormal(seed, offset, out.size));
    else {
      const words = philoxWords(seed, offset, out.size);
      for (let i = 0; i < words.length; i++) ov[i] = wordToUniform(words[i]);
    }
    return out;
  });

  registerKernel('Dropout', 'cpu', widenF16((inputs, { p, seed, offset }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, x.dtype, 'dropout');
    const xv = cpuData(x);
    const ov = cpuData(out);
    const words = philoxWords(seed, offset, x.size);
    const threshold = dropoutThreshold(p);
    // An f32 scale (as the webgpu kernel uses) makes f32 results bit-identical across backends.
    const scale = x.dtype === 'f64' ? 1 / (1 - p) : Math.fround(1 / (1 - p));
    for (let i = 0; i < xv.length; i++) ov[i] = words[i] >>> 8 >= threshold ? xv[i] * scale : 0;
    return out;
  }));
}
