import type { DType } from '../../dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../../errors.js';
import { MAX_WORKGROUPS_PER_DIM } from './constants.js';

/** Highest tensor rank the generated kernels index (shapes travel as `array<vec4<u32>, 2>`). */
export const MAX_RANK = 8;

/** WGSL element type of a dtype's storage. */
export function wgslType(dtype: DType): string {
  switch (dtype) {
    case 'f32':
      return 'f32';
    case 'f16':
      return 'f16';
    case 'i32':
      return 'i32';
    case 'u32':
    case 'bool':
      return 'u32';
    case 'f64':
      throw new DTypeError('webgpu: f64 is not supported on WebGPU (use the cpu backend)');
  }
}

/** Throws a ShapeError when a tensor's rank exceeds what the kernels index. */
export function checkRank(op: string, shape: readonly number[]): void {
  if (shape.length > MAX_RANK) throw new ShapeError(`${op}: rank ${shape.length} ${fmtShape(shape)} exceeds the WebGPU kernels' maximum rank ${MAX_RANK}`);
}

type Field = { name: string; kind: 'u32' | 'i32' | 'f32'; value: number } | { name: string; kind: 'arr'; values: readonly number[] };

/**
 * Builds a uniform block and its data together, so the WGSL struct and the bytes can
 * never disagree. Arrays (`array<vec4<u32>, 2>`, up to 8 entries) come first for
 * alignment, then scalars.
 */
export class Uniforms {
  private fields: Field[] = [];
  /** Error-buffer slot of a kernel that checks indices (set by {@link Uniforms.indexSlot}). */
  checkSlot: number | undefined;

  /**
   * Adds the u32 field `errSlot`, the slot from `ctx.indexCheck(...)` that the kernel
   * passes to `report_bad_index(u.errSlot, position, value)`.
   */
  indexSlot(slot: number): this {
    this.checkSlot = slot;
    return this.u32('errSlot', slot);
  }

  /** Adds an unsigned 32-bit field `name`. */
  u32(name: string, value: number): this {
    this.fields.push({ name, kind: 'u32', value });
    return this;
  }

  /** Adds a signed 32-bit field `name`. */
  i32(name: string, value: number): this {
    this.fields.push({ name, kind: 'i32', value });
    return this;
  }

  /** Adds a 32-bit float field `name`. */
  f32(name: string, value: number): this {
    this.fields.push({ name, kind: 'f32', value });
    return this;
  }

  /** Up to 8 unsigned entries, read in WGSL as `at(u.name, i)`. */
  arr(name: string, values: readonly number[]): this {
    if (values.length > MAX_RANK) throw new ShapeError(`uniform array ${name} has ${values.length} entries, more than ${MAX_RANK}`);
    this.fields.push({ name, kind: 'arr', values });
    return this;
  }

  private ordered(): Field[] {
    return [...this.fields.filter((f) => f.kind === 'arr'), ...this.fields.filter((f) => f.kind !== 'arr')];
  }

  /** `struct U { ... }` plus the binding declaration at `binding`. */
  declaration(binding: number): string {
    const members = this.ordered().map((f) => `  ${f.name}: ${f.kind === 'arr' ? 'array<vec4<u32>, 2>' : f.kind},`);
    if (members.length === 0) members.push('  _pad: u32,');
    return `struct U {\n${members.join('\n')}\n}\n@group(0) @binding(${binding}) var<uniform> u: U;\n${AT_FN}`;
  }

  /**
   * The block's bytes as u32 words (floats as their bits), padded to 16 bytes. Runs
   * per dispatch, so it writes one array in two passes (arrays, then scalars: the
   * order of {@link Uniforms.declaration}) and allocates nothing else.
   */
  data(): Uint32Array {
    const fields = this.fields;
    let count = 0;
    for (let i = 0; i < fields.length; i++) count += fields[i].kind === 'arr' ? 8 : 1;
    const words = new Uint32Array(Math.max(4, Math.ceil(count / 4) * 4));
    let w = 0;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (f.kind !== 'arr') continue;
      const vs = f.values;
      for (let j = 0; j < vs.length; j++) words[w + j] = vs[j] >>> 0;
      w += 8;
    }
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (f.kind === 'arr') continue;
      if (f.kind === 'f32') {
        F32_SCRATCH[0] = f.value;
        words[w++] = F32_BITS[0];
      } else words[w++] = f.value >>> 0;
    }
    return words;
  }
}

/** One float and its bits, to write f32 uniforms into u32 words. */
const F32_SCRATCH = new Float32Array(1);
const F32_BITS = new Uint32Array(F32_SCRATCH.buffer);

const AT_FN = `fn at(a: array<vec4<u32>, 2>, i: u32) -> u32 { return a[i / 4u][i % 4u]; }\n`;

/** Storage binding declarations: `inputs` read-only, then `outputs` read-write. */
export function storageBindings(inputs: readonly [string, string][], outputs: readonly [string, string][]): string {
  const lines: string[] = [];
  let b = 0;
  for (const [name, type] of inputs) lines.push(`@group(0) @binding(${b++}) var<storage, read> ${name}: array<${type}>;`);
  for (const [name, type] of outputs) lines.push(`@group(0) @binding(${b++}) var<storage, read_write> ${name}: array<${type}>;`);
  return lines.join('\n');
}

/** Entry point header for one thread per element: defines `i` (flat index) and returns past `limit`. */
export function elementMain(workgroupSize: number, limit: string): string {
  return `@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${workgroupSize}u;
  if (i >= ${limit}) { return; }`;
}

/** Workgroup counts for `threads` threads in groups of `workgroupSize` (2-D past 65535 groups). */
export function grid(threads: number, workgroupSize: number): [number, number, number] {
  const groups = Math.ceil(threads / workgroupSize);
  if (groups <= MAX_WORKGROUPS_PER_DIM) return [groups, 1, 1];
  return [MAX_WORKGROUPS_PER_DIM, Math.ceil(groups / MAX_WORKGROUPS_PER_DIM), 1];
}

/** Workgroup counts for one workgroup per row (2-D past 65535 rows); the kernel computes `row`. */
export function rowGrid(rows: number): [number, number, number] {
  if (rows <= MAX_WORKGROUPS_PER_DIM) return [rows, 1, 1];
  return [MAX_WORKGROUPS_PER_DIM, Math.ceil(rows / MAX_WORKGROUPS_PER_DIM), 1];
}

/**
 * WGSL that turns flat index `idx` over `u.shape` (rank `rank`) into a strided offset
 * `off` using the uniform array `u.<strides>`.
 */
export function stridedOffset(rank: number, idx: string, shape: string, strides: string, base: string, off: string): string {
  const lines = [`var ${off}: u32 = ${base};`, `{ var rem = ${idx};`];
  for (let d = rank - 1; d >= 0; d--) {
    lines.push(`  ${off} += (rem % at(u.${shape}, ${d}u)) * at(u.${strides}, ${d}u);`);
    if (d > 0) lines.push(`  rem = rem / at(u.${shape}, ${d}u);`);
  }
  lines.push('}');
  return lines.join('\n  ');
}
