import { f32ToF16Bits } from '../../../math.js';
import { dropoutThreshold, philoxNormal, philoxWords, splitU64, wordToUniform } from '../../../random/philox.js';
import { registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { program } from '../program.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { Uniforms, elementMain, grid, storageBindings, wgslType } from '../wgsl.js';
import { WGSL_PHILOX } from '../wgsl-philox.js';
import { enableF16, floatIO } from '../f16.js';

const WG = 256;

/** Bit pattern of `value` stored as one 32-bit word of `dtype`. */
export function wordOf(dtype: Tensor['dtype'], value: number): number {
  if (dtype === 'f32') return new Uint32Array(new Float32Array([value]).buffer)[0];
  if (dtype === 'bool') return value !== 0 ? 1 : 0;
  return Math.trunc(value) >>> 0;
}

/** Fills an existing 32-bit tensor with `value` (one dispatch in the pending encoder). */
export function fillTensor(ctx: WebGpuKernelContext, t: Tensor, value: number): void {
  const words = t.dtype === 'f16' ? Math.ceil(t.size / 2) : t.size;
  const word = t.dtype === 'f16' ? f32ToF16Bits(value) * 0x10001 : wordOf(t.dtype, value);
  const u = new Uniforms().u32('size', words).u32('word', word);
  const prog = program('fill/u32', 0, 1, () => `${storageBindings([], [['out', 'u32']])}
${u.declaration(1)}
${elementMain(WG, 'u.size')}
  out[i] = u.word;
}`);
  ctx.dispatch(prog, [], [t], u, grid(words, WG));
}

/** Registers the webgpu creation kernels: fill, arange, triu, random, dropout. */
export function registerWebGpuCreationKernels(): void {
  registerKernel('Fill', 'webgpu', (_inputs, { shape, value, dtype }, ctx) => {
    const out = ctx.output(shape, dtype, 'full');
    fillTensor(ctx, out, value);
    return out;
  });

  registerKernel('Arange', 'webgpu', (_inputs, { start, step, size, dtype }, ctx) => {
    const out = ctx.output([size], dtype, 'arange');
    // Computed on the host in float64 like the cpu kernel, so both round identically.
    const host = dtype === 'f32' ? new Float32Array(size) : dtype === 'i32' ? new Int32Array(size) : dtype === 'f16' ? new Uint16Array(size) : new Uint32Array(size);
    for (let i = 0; i < size; i++) host[i] = dtype === 'f16' ? f32ToF16Bits(start + i * step) : start + i * step;
    ctx.backend.write(out.liveStorage('arange'), host);
    return out;
  });

  registerKernel('Triu', 'webgpu', (inputs, { diagonal, fill }, ctx) => {
    const x = inputs[0];
    const out = ctx.output(x.shape, x.dtype, 'triu');
    const T = wgslType(x.dtype);
    const [rows, cols] = x.shape.slice(-2);
    // f16 has no 32-bit word to bitcast: its fill travels as an f32 and is rounded in the shader.
    const half = x.dtype === 'f16';
    const enable = enableF16(ctx, 'triu', [x.dtype]);
    const u = new Uniforms().u32('size', x.size).u32('rows', rows).u32('cols', cols).i32('diagonal', diagonal).u32('fill', wordOf(half ? 'f32' : x.dtype, fill));
    const fillExpr = half ? 'f16(bitcast<f32>(u.fill))' : `bitcast<${T}>(u.fill)`;
    const prog = program(`triu/${T}`, 1, 1, () => `${enable}${storageBindings([['xs', T]], [['out', T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let col = i32(i % u.cols);
  let row = i32((i / u.cols) % u.rows);
  out[i] = select(${fillExpr}, xs[i], col - row >= u.diagonal);
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, WG));
    return out;
  });

  // Random tensors are drawn on the host with the same Philox code as the cpu backend,
  // so initialisation is bit-identical everywhere (it is not a hot path).
  registerKernel('Random', 'webgpu', (_inputs, { shape, seed, offset, normal }, ctx) => {
    const out = ctx.output(shape, 'f32', normal ? 'randn' : 'rand');
    const host = new Float32Array(out.size);
    if (normal) host.set(philoxNormal(seed, offset, out.size));
    else {
      const words = philoxWords(seed, offset, out.size);
      for (let i = 0; i < words.length; i++) host[i] = wordToUniform(words[i]);
    }
    ctx.backend.write(out.liveStorage('random'), host);
    return out;
  });

  // Dropout masks are drawn on the device from the same Philox stream as the cpu kernel.
  registerKernel('Dropout', 'webgpu', (inputs, { p, seed, offset }, ctx) => {
    const x = inputs[0];
    const io = floatIO(ctx, 'dropout', x.dtype);
    const out = ctx.output(x.shape, x.dtype, 'dropout');
    const [k0, k1] = splitU64(seed);
    const [o0, o1] = splitU64(offset);
    const u = new Uniforms()
      .u32('size', x.size)
      .u32('k0', k0)
      .u32('k1', k1)
      .u32('o0', o0)
      .u32('o1', o1)
      .u32('threshold', dropoutThreshold(p))
      .f32('scale', 1 / (1 - p));
    const prog = program(`dropout/${io.T}`, 1, 1, () => `${io.enable}${WGSL_PHILOX}
${storageBindings([['xs', io.T]], [['out', io.T]])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  let word = philox_word(u.k0, u.k1, u.o0, u.o1, i);
  out[i] = ${io.store(`select(0.0, ${io.load('xs[i]')} * u.scale, (word >> 8u) >= u.threshold)`)};
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, WG));
    return out;
  });
}
