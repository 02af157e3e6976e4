/**
 * Checks of a saved optimizer state dict against an optimizer's groups, done before
 * anything changes: the dict's structure, the groups, and which saved entry belongs to
 * which parameter (matched by name).
 */
import { DTypeError, ShapeError, type Tensor } from '@webpeft/tensor';
import type { BufferLayout, OptimizerStateDict, SavedBuffer } from './types.js';

/** A parameter of the loading optimizer, as state-dict checks see it. */
export interface OwnParam {
  param: Tensor;
  group: number;
  name: string;
}

/**
 * Checks that `sd` is a state dict of `owner`'s shape and maps each saved flat index to
 * the parameter of the same name in the same group. Throws naming the first mismatch.
 */
export function matchSavedParams(owner: string, sd: OptimizerStateDict, groups: readonly { params: Tensor[]; names: string[] }[]): Map<number, OwnParam> {
  const where = `${owner}.loadStateDict`;
  if (typeof sd !== 'object' || sd === null || !Array.isArray(sd.paramGroups) || typeof sd.state !== 'object' || sd.state === null) {
    throw new TypeError(`${where}: not an optimizer state dict (needs 'optimizer', 'state' and 'paramGroups')`);
  }
  if (sd.paramGroups.length !== groups.length) {
    throw new Error(`${where}: paramGroups has ${sd.paramGroups.length} groups, this optimizer has ${groups.length}`);
  }
  const bySaved = new Map<number, OwnParam>();
  sd.paramGroups.forEach((sg, g) => {
    const own = groups[g];
    if (!Array.isArray(sg.params) || !Array.isArray(sg.names) || sg.names.length !== sg.params.length) {
      throw new TypeError(`${where}: paramGroups[${g}] needs 'params' and 'names' of the same length`);
    }
    if (sg.params.length !== own.params.length) {
      throw new Error(`${where}: paramGroups[${g}].params has ${sg.params.length} entries, this group has ${own.params.length}`);
    }
    const ownIndex = new Map(own.names.map((n, j) => [n, j]));
    const seen = new Set<string>();
    sg.names.forEach((n, j) => {
      const k = ownIndex.get(n);
      if (k === undefined) throw new Error(`${where}: paramGroups[${g}] has parameter '${n}', which group ${g} of this optimizer does not have (it has ${own.names.join(', ')})`);
      if (seen.has(n)) throw new Error(`${where}: paramGroups[${g}] names parameter '${n}' twice`);
      seen.add(n);
      const flat = sg.params[j];
      if (!Number.isInteger(flat) || bySaved.has(flat)) throw new Error(`${where}: paramGroups[${g}].params[${j}] is ${flat}, not a new flat index`);
      bySaved.set(flat, { param: own.params[k], group: g, name: n });
    });
  });
  for (const key of Object.keys(sd.state)) {
    if (!bySaved.has(Number(key))) throw new Error(`${where}: state[${key}] belongs to no parameter of paramGroups`);
  }
  return bySaved;
}

const ARRAY_OF: Record<SavedBuffer['dtype'], (d: unknown) => boolean> = {
  f32: (d) => d instanceof Float32Array || Array.isArray(d),
  f64: (d) => d instanceof Float64Array || Array.isArray(d),
  u32: (d) => d instanceof Uint32Array || Array.isArray(d),
};

/** Checks one saved state against the layout its parameter needs; throws naming key, buffer and parameter. */
export function checkSavedState(owner: string, key: string, name: string, saved: unknown, layout: Record<string, BufferLayout>): void {
  const where = `${owner}.loadStateDict: state[${key}] (parameter ${name})`;
  const st = saved as { step?: unknown; buffers?: Record<string, SavedBuffer> };
  if (typeof st !== 'object' || st === null || typeof st.buffers !== 'object' || st.buffers === null) throw new TypeError(`${where} needs 'step' and 'buffers'`);
  if (typeof st.step !== 'number' || !Number.isInteger(st.step) || st.step < 0) throw new RangeError(`${where}: step must be a non-negative integer, got ${String(st.step)}`);
  const expected = Object.keys(layout);
  const got = Object.keys(st.buffers);
  if (expected.length !== got.length || expected.some((n) => !got.includes(n))) {
    throw new Error(`${where} has buffers [${got.join(',')}], expected [${expected.join(',')}]`);
  }
  for (const n of expected) {
    const b = st.buffers[n];
    const want = layout[n];
    if (b.dtype !== want.dtype || !ARRAY_OF[want.dtype](b.data)) {
      throw new DTypeError(`${where}.${n} is ${String(b.dtype)}, expected ${want.dtype}`);
    }
    const size = want.shape.reduce((a, x) => a * x, 1);
    if (!Array.isArray(b.shape) || b.shape.join(',') !== want.shape.join(',') || b.data.length !== size) {
      throw new ShapeError(`${where}.${n} is ${b.dtype} [${String(b.shape)}] (${b.data.length} values), expected ${want.dtype} [${want.shape.join(',')}]`);
    }
  }
}
