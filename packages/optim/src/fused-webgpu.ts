import {
  type Storage,
  type Tensor,
  Uniforms,
  type WebGpuBackend,
  _engine,
  elementMain,
  grid,
  program,
  runKernel,
  storageBindings,
  tensor,
  withMemoryTag,
} from '@webpeft/tensor';
import type { Scalars, UpdateRule } from './update-rule.js';
import type { BaseHyper } from './types.js';

/*
 * One fused update kernel per optimizer, over many parameters per dispatch.
 *
 * Parameters, gradients and state tensors live in separate GPU buffers, and a bind group
 * holds few storage buffers (maxStorageBuffersPerShaderStage is 8 by default): binding
 * them directly would cap a dispatch at two parameters for Adam (param, grad, m, v).
 * Instead each batch of parameters (same group, same step count, at most one storage
 * binding in size) is packed into flat scratch buffers with `copyBufferToBuffer`
 * commands, which are ordered with the dispatches in the same encoder and cost no
 * pipeline or bind group; ONE dispatch updates every element of the batch; the updated
 * parameters and states are copied back into their own buffers. The parameter tensors
 * keep their identity and storage (modules keep their references), and the state stays
 * one tensor per parameter (explicit data that a paged optimizer can move).
 *
 * Typical training (one group, all parameters at the same step, < 128 MiB per buffer)
 * is one dispatch per step, plus one for the non-finite check.
 */

const WG = 256;

/** A parameter with its gradient and state, ready to update. */
export interface FusedItem {
  param: Tensor;
  grad: Tensor;
  buffers: Record<string, Tensor>;
  /** Index in the step's flag table (non-finite report). */
  flag: number;
}

/** Parameters that one dispatch updates, with their flat offsets. */
interface Batch {
  items: FusedItem[];
  offsets: number[];
  size: number;
  grads: Tensor | null;
}

/** Splits `items` into batches whose flat buffers fit one storage binding. */
export function planBatches(items: readonly FusedItem[], maxElements: number): Batch[] {
  const batches: Batch[] = [];
  let cur: Batch | null = null;
  for (const it of items) {
    if (!cur || cur.size + it.param.size > maxElements) {
      cur = { items: [], offsets: [], size: 0, grads: null };
      batches.push(cur);
    }
    cur.items.push(it);
    cur.offsets.push(cur.size);
    cur.size += it.param.size;
  }
  return batches;
}

/** Largest flat batch (elements) of 4-byte values that one binding of `backend` holds. */
export function maxBatchElements(backend: WebGpuBackend): number {
  return Math.floor(Math.min(backend.limits.maxStorageBufferBindingSize, backend.limits.maxBufferSize) / 4);
}

function storageOf(t: Tensor): Storage {
  return t.liveStorage('optimizer step');
}

function flat(backend: WebGpuBackend, size: number): Tensor {
  return withMemoryTag('optimizer', () => _engine.makeTensor(backend, [size], 'f32', 'optimizer step'));
}

function packInto(backend: WebGpuBackend, b: Batch, pick: (it: FusedItem) => Tensor): Tensor {
  const out = flat(backend, b.size);
  const dst = storageOf(out);
  b.items.forEach((it, j) => backend.copy(storageOf(pick(it)), 0, dst, b.offsets[j] * 4, it.param.size * 4));
  return out;
}

function unpackFrom(backend: WebGpuBackend, b: Batch, src: Tensor, pick: (it: FusedItem) => Tensor): void {
  const s = storageOf(src);
  b.items.forEach((it, j) => backend.copy(s, b.offsets[j] * 4, storageOf(pick(it)), 0, it.param.size * 4));
}

/**
 * Packs the gradients of every batch. Kept separate from the update so that the
 * non-finite check can read its flags before any parameter changes.
 */
export function packGrads(backend: WebGpuBackend, batches: Batch[]): void {
  for (const b of batches) b.grads = packInto(backend, b, (it) => it.grad);
}

/**
 * Sets `flags[item.flag]` to 1 for every item whose gradient has a NaN or infinity,
 * one dispatch per batch. Exponent bits are tested, since WGSL may assume finite floats
 * in arithmetic and comparisons (`x != x` can fold to false).
 */
export function checkFinite(backend: WebGpuBackend, batches: Batch[], flagCount: number): Tensor {
  const flags = withMemoryTag('optimizer', () => tensor(new Uint32Array(flagCount), [flagCount], { dtype: 'u32', backend: 'webgpu' }));
  for (const b of batches) {
    // Segment starts and the flag slot of each segment, for the rare non-finite element.
    const table = new Uint32Array(b.items.length * 2 + 1);
    b.items.forEach((it, j) => {
      table[j] = b.offsets[j];
      table[b.items.length + 1 + j] = it.flag;
    });
    table[b.items.length] = b.size;
    const seg = withMemoryTag('optimizer', () => tensor(table, [table.length], { dtype: 'u32', backend: 'webgpu' }));
    const u = new Uniforms().u32('size', b.size).u32('count', b.items.length);
    const prog = program('optim/check-finite', 2, 1, () => `
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
}`);
    runKernel(backend, prog, [b.grads!, seg], [flags], u, grid(b.size, WG));
    seg.dispose();
  }
  return flags;
}

/** Frees the packed gradients of `batches`. */
export function releaseGrads(batches: Batch[]): void {
  for (const b of batches) {
    b.grads?.dispose();
    b.grads = null;
  }
}

/**
 * Runs `rule`'s fused kernel over every batch: pack params and states, one dispatch,
 * copy back. Requires `packGrads` first; frees the packed gradients.
 */
export function fusedUpdate<H extends BaseHyper>(backend: WebGpuBackend, rule: UpdateRule<H>, h: H, k: Scalars, batches: Batch[]): void {
  const names = rule.stateNames(h);
  const { variant, body } = rule.wgsl(h);
  const uniforms = (size: number) => {
    const u = new Uniforms().u32('size', size);
    for (const [name, value] of Object.entries(k)) u.f32(name, value);
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
  for (const b of batches) {
    const params = packInto(backend, b, (it) => it.param);
    const states = names.map((n) => packInto(backend, b, (it) => it.buffers[n]));
    runKernel(backend, prog, [b.grads!], [params, ...states], uniforms(b.size), grid(b.size, WG));
    unpackFrom(backend, b, params, (it) => it.param);
    names.forEach((n, j) => unpackFrom(backend, b, states[j], (it) => it.buffers[n]));
    params.dispose();
    for (const s of states) s.dispose();
    b.grads?.dispose();
    b.grads = null;
  }
}

export type { Batch };
