/**
 * Chunk-aware wrappers of the elementwise, cast, creation and trivial-sum
 * kernels: where an operand or the output is split in row chunks the op runs chunk by
 * chunk (see `row-wise.ts`); otherwise the wrapped kernel runs as before.
 */
import { BYTES_PER_ELEMENT, type DType } from '../../../dtype.js';
import { ChunkedTensorError } from '../../../errors.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { ACTIVATION_OPS, BINARY_OPS, COMPARE_OPS, type OpName, UNARY_OPS } from '../../../op-names.js';
import { type StoredKernel, getKernel, registerKernel } from '../../../registry.js';
import { broadcastShapes, sizeOf } from '../../../shape.js';
import type { Tensor } from '../../../tensor.js';
import { engine } from '../../../engine.js';
import { fillTensor } from '../kernels/creation.js';
import { addCuts, blockOf, rowElementsOf, rowsOf, segments, writeBlock } from './blocks.js';
import { type RowOperand, runByRows } from './row-wise.js';

/** Whether any of `ts` is split across several bindings. */
export function anyChunked(ts: readonly Tensor[]): boolean {
  for (const t of ts) {
    const n = t.liveStorage('chunked').bindings;
    if (n !== undefined && n > 1) return true;
  }
  return false;
}

/** The registered webgpu kernel of `op` (the one a chunk-aware wrapper falls back to). */
export function baseKernel(op: OpName): StoredKernel {
  const k = getKernel(op, 'webgpu');
  if (!k) throw new Error(`chunked kernels: no webgpu kernel of ${op} to wrap`);
  return k;
}

/** Whether a tensor of `shape`/`dtype` must be chunked on this device. */
export function outputChunked(ctx: WebGpuKernelContext, shape: readonly number[], dtype: DType): boolean {
  return sizeOf(shape) * BYTES_PER_ELEMENT[dtype] > ctx.maxBindingBytes;
}

/** How operand `t` of an elementwise op with output `outShape` is split: its rows, or whole. */
function elementwiseKind(op: string, t: Tensor, outShape: readonly number[]): RowOperand {
  if (t.rank === outShape.length && t.shape.every((d, i) => d === outShape[i])) return 'rows';
  // A scalar or a row `[..., 1, L]` broadcast over every row is the same for each chunk.
  const L = outShape.length > 0 ? outShape[outShape.length - 1] : 1;
  if (t.size === 1 || (t.size === L && rowElementsOf(t) === L)) return 'whole';
  throw new ChunkedTensorError(op, outShape, t.dtype, 0, `an operand ${JSON.stringify(t.shape)} broadcast across rows of a split tensor is not supported (operands must have the output's shape, one row, or one element)`);
}

/** Wraps the elementwise kernel of `op`, whose output has `outDtype(inputs)` and the broadcast shape. */
function wrapElementwise(op: OpName, outDtype: (inputs: readonly Tensor[], attrs: unknown) => DType): void {
  const base = baseKernel(op);
  registerKernel(
    op,
    'webgpu',
    (inputs, attrs, ctx) => {
      const shape = inputs.length === 1 ? inputs[0].shape : inputs.reduce<readonly number[]>((s, t) => broadcastShapes(op, s, t.shape), inputs[0].shape);
      const dtype = outDtype(inputs, attrs);
      if (!anyChunked(inputs) && !outputChunked(ctx, shape, dtype)) return base(inputs, attrs, ctx);
      const kinds = inputs.map((t) => elementwiseKind(op, t, shape));
      const out = ctx.chunkedOutput(shape, dtype, op);
      return runByRows(ctx, op, inputs, kinds, out, 'rows', (parts) => ctx.run(op, parts, attrs));
    },
    { chunked: true },
  );
}

/** Registers the chunk-aware elementwise, cast, creation and sum wrappers. */
export function registerChunkedElementwiseKernels(): void {
  const same = (inputs: readonly Tensor[]): DType => inputs[0].dtype;
  for (const op of [...UNARY_OPS, ...ACTIVATION_OPS, ...BINARY_OPS]) wrapElementwise(op, same);
  for (const op of COMPARE_OPS) wrapElementwise(op, () => 'bool');
  wrapElementwise('BinaryScalar', same);
  wrapElementwise('Where', (inputs) => inputs[1].dtype);
  wrapElementwise('Cast', (_inputs, attrs) => (attrs as { dtype: DType }).dtype);

  const fill = baseKernel('Fill');
  registerKernel(
    'Fill',
    'webgpu',
    (inputs, attrs, ctx) => {
      if (!outputChunked(ctx, attrs.shape, attrs.dtype)) return fill(inputs, attrs, ctx);
      const out = ctx.chunkedOutput(attrs.shape, attrs.dtype, 'full');
      const info = ctx.chunks(out)!;
      for (let i = 0; i < info.ranges.length; i++) {
        const v = ctx.chunkView(out, i);
        fillTensor(ctx, v, attrs.value);
        v.dispose();
      }
      return out;
    },
    { chunked: true },
  );

  // Random tensors are drawn on the host (see kernels/creation.ts); the upload splits at chunks.
  const random = baseKernel('Random');
  registerKernel(
    'Random',
    'webgpu',
    (inputs, attrs, ctx) => {
      if (!outputChunked(ctx, attrs.shape, 'f32')) return random(inputs, attrs, ctx);
      // The base kernel allocates with `output`, which refuses a split tensor: draw one
      // chunk-sized piece at a time from the same Philox stream position instead.
      const out = ctx.chunkedOutput(attrs.shape, 'f32', attrs.normal ? 'randn' : 'rand');
      const info = ctx.chunks(out)!;
      const L = info.rowElements;
      for (const r of info.ranges) {
        // Philox blocks hold 4 words: a uniform draw takes 1 word per element, a normal 2.
        const start = r.rowStart * L;
        const wordsPerElement = attrs.normal ? 2 : 1;
        if ((start * wordsPerElement) % 4 !== 0) throw new ChunkedTensorError(attrs.normal ? 'randn' : 'rand', attrs.shape, 'f32', info.ranges.length, 'its chunks do not start on a random-stream block');
        const piece = random(inputs, { ...attrs, shape: [r.rows, L], offset: attrs.offset + (start * wordsPerElement) / 4 }, ctx);
        ctx.copy(piece, 0, out, r.rowStart * L * 4, r.rows * L * 4);
        piece.dispose();
      }
      return out;
    },
    { chunked: true },
  );

  // Sums over leading axes (a batch summed away by sumToShape, e.g. the batched weight
  // gradient of a tied head): group by group, row block by row block. Axes of size 1
  // are free.
  const sum = baseKernel('Sum');
  registerKernel(
    'Sum',
    'webgpu',
    (inputs, attrs, ctx) => {
      const x = inputs[0];
      const reduced = attrs.axes.filter((a) => x.shape[a] !== 1);
      const leading = reduced.every((a, i) => a === i) && reduced.length < x.rank - 1;
      const shape = attrs.keepDims ? x.shape.map((d, i) => (attrs.axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !attrs.axes.includes(i));
      if (!anyChunked(inputs) && !outputChunked(ctx, shape, x.dtype)) return sum(inputs, attrs, ctx);
      if (reduced.length === x.shape.filter((d) => d !== 1).length) return reduceAll(ctx, 'Sum', 'Add', x, shape);
      if (!leading) throw new ChunkedTensorError('sum', x.shape, x.dtype, x.liveStorage('sum').bindings ?? 1, 'only leading axes (not the last) or axes of size 1 can be summed');
      const groups = reduced.reduce((p, a) => p * x.shape[a], 1);
      const out = ctx.chunkedOutput(shape, x.dtype, 'sum');
      const rows = rowsOf(out);
      const L = rowElementsOf(x);
      try {
        const cuts = new Set([0, rows]);
        addCuts(cuts, ctx.chunks(out));
        const info = ctx.chunks(x);
        if (info) for (const r of info.ranges) cuts.add(r.rowStart % rows);
        for (const [r0, n] of segments(cuts)) {
          let acc: Tensor | null = null;
          for (let g = 0; g < groups; g++) {
            const part = blockOf(ctx, x, g * rows + r0, n, 0, L);
            // The first group's block is only read (a view or copy; disposing it frees no chunk).
            if (!acc) {
              acc = part;
              continue;
            }
            const next: Tensor = ctx.run('Add', [acc, part], {});
            acc.dispose();
            part.dispose();
            acc = next;
          }
          writeBlock(ctx, out, r0, 0, acc!);
          acc!.dispose();
        }
      } catch (e) {
        out.dispose();
        throw e;
      }
      return out;
    },
    { chunked: true },
  );

  // The max over every element (the infinity norm of gradient clipping).
  const max = baseKernel('Max');
  registerKernel(
    'Max',
    'webgpu',
    (inputs, attrs, ctx) => {
      const x = inputs[0];
      if (!anyChunked(inputs)) return max(inputs, attrs, ctx);
      const shape = attrs.keepDims ? x.shape.map(() => 1) : [];
      if (!x.shape.every((d, i) => d === 1 || attrs.axes.includes(i))) {
        throw new ChunkedTensorError('max', x.shape, x.dtype, x.liveStorage('max').bindings ?? 1, 'only a reduction over every axis is supported');
      }
      return reduceAll(ctx, 'Max', 'Maximum', x, shape);
    },
    { chunked: true },
  );
}

/**
 * A reduction of every element of chunked `x` to `shape` (all ones, or a scalar): each
 * chunk reduced by `reduce`, the partial results combined in chunk order by `combine`.
 */
function reduceAll(ctx: WebGpuKernelContext, reduce: 'Sum' | 'Max', combine: 'Add' | 'Maximum', x: Tensor, shape: readonly number[]): Tensor {
  const info = ctx.chunks(x)!;
  let acc: Tensor | null = null;
  try {
    for (let i = 0; i < info.ranges.length; i++) {
      const view = ctx.chunkView(x, i);
      const part = ctx.run(reduce, [view], { axes: [0, 1], keepDims: false });
      view.dispose();
      if (!acc) acc = part;
      else {
        const next: Tensor = ctx.run(combine, [acc, part], {});
        acc.dispose();
        part.dispose();
        acc = next;
      }
    }
  } catch (e) {
    acc?.dispose();
    throw e;
  }
  const out = engine.shareStorage(acc!, shape, reduce);
  acc!.dispose();
  return out;
}
