import { type Tensor, tensor, withMemoryTag } from '@webpeft/tensor';
import { Uniforms, type WebGpuKernelContext, elementMain, grid, program, registerInPlaceKernel, storageBindings } from '@webpeft/tensor/kernel';
import type { UpdateItem } from './optimizer-ops.js';

/*
 * The webgpu kernels of the optimizer's in-place ops: one fused update kernel per
 * optimizer, over many parameters per dispatch, and the non-finite check.
 *
 * Parameters, gradients and state tensors live in separate GPU buffers, and a bind group
 * holds few storage buffers (maxStorageBuffersPerShaderStage is 8 by default): binding
 * them directly would cap a dispatch at two parameters for Adam (param, grad, m, v).
 * Instead each batch of parameters (same group, same step count, at most one storage
 * binding in size) is packed into flat scratch buffers with buffer copies, which are
 * ordered with the dispatches in the same encoder and cost no pipeline or bind group;
 * ONE dispatch updates every element of the batch; the updated parameters and states
 * are copied back into their own buffers. The parameter tensors keep their identity and
 * storage (modules keep their references), and the state stays one tensor per parameter
 * (explicit data that a paged optimizer can move).
 *
 * A parameter of at least DIRECT_CHECK_ELEMENTS elements is updated where it lies
 * instead (its four buffers bound directly, one dispatch, no copies), and a flat batch
 * holds at most MAX_BATCH_ELEMENTS, which bounds the scratch memory of a step. LoRA-style
 * training (many small parameters, < 4M elements in all) is one dispatch per step, plus
 * one for the non-finite check.
 */

const WG = 256;

/**
 * Tensors at least this large are checked for non-finite values, and updated, where they
 * are (one dispatch each, no packed copy): at this size a dispatch's host cost is small
 * against copying the tensor into and out of a flat buffer.
 */
export const DIRECT_CHECK_ELEMENTS = 1 << 20;

/**
 * Largest flat batch, in elements (16 MiB of f32): the scratch copies of one batch
 * (gradient, parameter and each state) are what a step allocates, so the cap bounds the
 * step's transient memory at `(2 + states) * 16 MiB` whatever the number of trainable
 * parameters (Qwen2.5-0.5B's LoRA, 8.4M elements in one batch, took 134 MiB of scratch for
 * AdamW; now three dispatches and 64 MiB).
 */
export const MAX_BATCH_ELEMENTS = 1 << 22;

/** Items that one dispatch covers, with their offsets in the flat buffers. */
export interface Batch<T> {
  items: T[];
  offsets: number[];
  size: number;
}

/** Splits `items` (of `sizeOf` elements each) into batches whose flat buffers hold at most `maxElements`. */
export function planBatches<T>(items: readonly T[], maxElements: number, sizeOf: (it: T) => number): Batch<T>[] {
  const batches: Batch<T>[] = [];
  let cur: Batch<T> | null = null;
  for (const it of items) {
    const n = sizeOf(it);
    if (!cur || cur.size + n > maxElements) {
      cur = { items: [], offsets: [], size: 0 };
      batches.push(cur);
    }
    cur.items.push(it);
    cur.offsets.push(cur.size);
    cur.size += n;
  }
  return batches;
}

/** Largest flat batch (elements) of 4-byte values: {@link MAX_BATCH_ELEMENTS}, or less where one binding holds less. */
function maxBatchElements(ctx: WebGpuKernelContext): number {
  return Math.min(MAX_BATCH_ELEMENTS, Math.floor(ctx.maxBindingBytes / 4));
}

/**
 * Whether `it` is updated where it lies, its buffers bound directly: large, f32, and no
 * tensor of it split in row chunks (its state may be chunked differently from the parameter).
 */
function updatesInPlace(ctx: WebGpuKernelContext, it: UpdateItem, names: readonly string[]): boolean {
  const all = [it.param, it.grad, ...names.map((n) => it.buffers[n])];
  return it.param.size >= DIRECT_CHECK_ELEMENTS && all.every((t) => t.dtype === 'f32' && t.size === it.param.size && !ctx.chunks(t));
}

/**
 * Elements `[start, start + count)` of an item. A parameter larger than one binding (a
 * tensor split in row chunks, such as GPT-2's 154 MB embedding) is updated in pieces
 * that each fit a flat batch; buffer copies read and write across its chunks.
 */
interface Piece<T> {
  item: T;
  start: number;
  count: number;
}

/** `items` as pieces of at most `maxElements` elements each. */
function piecesOf<T>(items: readonly T[], maxElements: number, sizeOf: (it: T) => number): Piece<T>[] {
  const out: Piece<T>[] = [];
  for (const item of items) {
    const n = sizeOf(item);
    if (n <= maxElements) out.push({ item, start: 0, count: n });
    else for (let start = 0; start < n; start += maxElements) out.push({ item, start, count: Math.min(maxElements, n - start) });
  }
  return out;
}

/** A flat f32 buffer holding `pick(item)` of every piece of `b` at its offset. */
function packInto<T>(ctx: WebGpuKernelContext, b: Batch<Piece<T>>, pick: (it: T) => Tensor): Tensor {
  const out = withMemoryTag('optimizer', () => ctx.output([b.size], 'f32', 'optimizer step'));
  b.items.forEach((p, j) => {
    ctx.copy(pick(p.item), p.start * 4, out, b.offsets[j] * 4, p.count * 4);
  });
  return out;
}

function unpackFrom<T>(ctx: WebGpuKernelContext, b: Batch<Piece<T>>, src: Tensor, pick: (it: T) => Tensor): void {
  b.items.forEach((p, j) => {
    ctx.copy(src, b.offsets[j] * 4, pick(p.item), p.start * 4, p.count * 4);
  });
}

/** Segment check: sets `flags[slot of the segment of i]` for a non-finite `gs[i]` (binary search over segment starts). */
const checkPacked = program('optim/check-finite/packed', 2, 1, () => {
  const u = new Uniforms().u32('size', 0).u32('count', 0);
  return `
${storageBindings([['gs', 'f32'], ['seg', 'u32']], [['flags', 'atomic<u32>']])}
${u.declaration(3)}
${elementMain(WG, 'u.size')}
  if ((bitcast<u32>(gs[i]) & 0x7f800000u) != 0x7f800000u) { return; }
  var lo = 0u;
  var hi = u.count;
  loop {
    if (hi - lo <= 1u) { break; }
    let mid = (lo + hi) / 2u;
    if (seg[mid] <= i) { lo = mid; } else { hi = mid; }
  }
  atomicOr(&flags[seg[u.count + 1u + lo]], 1u);
}`;
});

/** Whole-tensor check of one tensor bound directly: sets `flags[u.slot]`. */
const checkDirect = program('optim/check-finite/direct', 1, 1, () => {
  const u = new Uniforms().u32('size', 0).u32('slot', 0);
  return `
${storageBindings([['gs', 'f32']], [['flags', 'atomic<u32>']])}
${u.declaration(2)}
${elementMain(WG, 'u.size')}
  if ((bitcast<u32>(gs[i]) & 0x7f800000u) == 0x7f800000u) { atomicOr(&flags[u.slot], 1u); }
}`;
});

/**
 * Sets `flags[i]` for every tensor that has a NaN or infinity. Exponent bits are tested,
 * since WGSL may assume finite floats in arithmetic and comparisons (`x != x` can fold
 * to false). Small tensors are packed into batches (one dispatch per batch); large ones
 * are checked where they are (one dispatch each, no copy).
 */
function nonFiniteFlags(ctx: WebGpuKernelContext, tensors: readonly Tensor[], flags: Tensor): void {
  const small: { t: Tensor; slot: number }[] = [];
  tensors.forEach((t, slot) => {
    if (t.size === 0) return;
    if (t.size < DIRECT_CHECK_ELEMENTS) {
      small.push({ t, slot });
      return;
    }
    const chunks = ctx.chunks(t);
    if (!chunks) {
      const u = new Uniforms().u32('size', t.size).u32('slot', slot);
      ctx.dispatch(checkDirect, [t], [flags], u, grid(t.size, WG));
      return;
    }
    // A tensor split in row chunks is checked chunk by chunk, through views.
    chunks.ranges.forEach((r, i) => {
      const view = ctx.chunkView(t, i);
      const u = new Uniforms().u32('size', view.size).u32('slot', slot);
      ctx.dispatch(checkDirect, [view], [flags], u, grid(view.size, WG));
      view.dispose();
    });
  });
  for (const b of planBatches(piecesOf(small, maxBatchElements(ctx), (it) => it.t.size), maxBatchElements(ctx), (p) => p.count)) {
    const packed = packInto(ctx, b, (it) => it.t);
    // Segment starts, the end, then the flag slot of each segment.
    const table = new Uint32Array(b.items.length * 2 + 1);
    b.items.forEach((p, j) => {
      table[j] = b.offsets[j];
      table[b.items.length + 1 + j] = p.item.slot;
    });
    table[b.items.length] = b.size;
    const seg = withMemoryTag('optimizer', () => tensor(table, [table.length], { dtype: 'u32', backend: ctx.backend.name }));
    const u = new Uniforms().u32('size', b.size).u32('count', b.items.length);
    ctx.dispatch(checkPacked, [packed, seg], [flags], u, grid(b.size, WG));
    packed.dispose();
    seg.dispose();
  }
}

/** Registers the webgpu kernels of `OptimizerUpdate` and `NonFiniteFlags`. */
export function registerOptimizerWebGpuKernels(): void {
  registerInPlaceKernel('NonFiniteFlags', 'webgpu', ({ tensors, flags }, ctx) => nonFiniteFlags(ctx, tensors, flags));

  // Large parameters are updated where they are; the rest are packed per batch, updated
  // by one dispatch per batch and copied back.
  registerInPlaceKernel('OptimizerUpdate', 'webgpu', ({ rule, hyper, scalars, items }, ctx) => {
    const names = rule.stateNames(hyper);
    const { variant, body } = rule.wgsl(hyper);
    const uniforms = (size: number) => {
      const u = new Uniforms().u32('size', size);
      for (const [name, value] of Object.entries(scalars)) u.f32(name, value);
      return u;
    };
    const prog = program(`optim/${rule.name}/${variant}`, 1, 1 + names.length, () => `
${storageBindings([['gs', 'f32']], [['ps', 'f32'], ...names.map((n): [string, string] => [`s_${n}`, 'f32'])])}
${uniforms(0).declaration(2 + names.length)}
${elementMain(WG, 'u.size')}
  let g = gs[i];
  var p = ps[i];
${names.map((n) => `  var ${n} = s_${n}[i];`).join('\n')}
${body}
  ps[i] = p;
${names.map((n) => `  s_${n}[i] = ${n};`).join('\n')}
}`);
    const packed: UpdateItem[] = [];
    for (const it of items) {
      if (!updatesInPlace(ctx, it, names)) packed.push(it);
      else ctx.dispatch(prog, [it.grad], [it.param, ...names.map((n) => it.buffers[n])], uniforms(it.param.size), grid(it.param.size, WG));
    }
    for (const b of planBatches(piecesOf<UpdateItem>(packed, maxBatchElements(ctx), (it) => it.param.size), maxBatchElements(ctx), (p) => p.count)) {
      const grads = packInto(ctx, b, (it) => it.grad);
      const params = packInto(ctx, b, (it) => it.param);
      const states = names.map((n) => packInto(ctx, b, (it) => it.buffers[n]));
      ctx.dispatch(prog, [grads], [params, ...states], uniforms(b.size), grid(b.size, WG));
      unpackFrom(ctx, b, params, (it) => it.param);
      names.forEach((n, j) => unpackFrom(ctx, b, states[j], (it) => it.buffers[n]));
      for (const t of [grads, params, ...states]) t.dispose();
    }
  });
}
