import type { Uniforms } from '../../wgsl.js';
import { type MatmulLayout, batchOffsets, layoutKey, matmulBindings, matmulHelpers, uniformBinding } from './wgsl.js';

/** Workgroup shape of the register-tiled kernel. */
export interface TileShape {
  /** Threads along columns; each owns 4 columns. */
  readonly wgX: number;
  /** Threads along rows; with 1 the rows come from the workgroup id, uniform across the group. */
  readonly wgY: number;
  /** Rows per thread: 4 or 8. */
  readonly rows: 4 | 8;
  /** Columns per thread: 4 or 8 (rows/4 x cols/4 accumulator blocks of 4x4). */
  readonly cols: 4 | 8;
}

/**
 * Register-tiled matmul: each thread accumulates a `rows` x `cols` output block in `mat4x4`s
 * (64 FMAs per 4-step of k and block) reading A and B straight from storage, with no
 * workgroup memory (software Vulkan drivers pay heavily for barriers; GPUs' caches
 * serve the reuse inside a workgroup). With `wgY = 1` every thread of a workgroup reads
 * the same A rows, so A loads are uniform (one scalar load broadcast on SIMD CPUs).
 * Dispatch: x = column blocks / wgX, y = row blocks / wgY, z = batch.
 *
 * With `unrollK` (a multiple of 4, at least k) the k loop is unrolled: the small-k
 * variant for `[m, r] x [r, n]` with a LoRA rank r, which is bound by output writes.
 */
export function tiledSource(l: MatmulLayout, u: Uniforms, t: TileShape, unrollK?: number): { key: string; source: () => string } {
  const key = `matmul/tile/${t.wgX}x${t.wgY}r${t.rows}c${t.cols}${unrollK === undefined ? '' : `/k${unrollK}`}/${layoutKey(l)}`;
  return { key, source: () => tiledWgsl(l, u, t, unrollK) };
}

/**
 * A caller-supplied B operand of the register tile (see `b-loader.ts`): its storage
 * declarations (bindings 1 .. `count`), WGSL defining `fn bTile(p: u32, c: u32, j: u32) -> mat4x4<f32>`
 * (`j`: the thread's column block, a literal) and statements run once at the top of `main` (`prologue`).
 */
export interface TiledCustomB {
  readonly bindings: string;
  readonly count: number;
  readonly wgsl: string;
  readonly prologue: string;
}

/** WGSL of the register tile, reading B with the layout's loads or through `customB`'s `bTile(p, c, j)`. */
export function tiledWgsl(l: MatmulLayout, u: Uniforms, t: TileShape, unrollK?: number, customB?: TiledCustomB): string {
  const rowBlocks = Array.from({ length: t.rows / 4 }, (_, i) => i);
  const colBlocks = Array.from({ length: t.cols / 4 }, (_, j) => j);
  const blocks = rowBlocks.flatMap((i) => colBlocks.map((j) => ({ i, j, name: `acc${i}_${j}` })));
  const step = (p: string) => `{
    ${rowBlocks.map((i) => `let at${i} = aTile(aOff, r0 + ${4 * i}u, ${p});`).join('\n    ')}
    ${colBlocks.map((j) => `let bt${j} = ${customB ? `bTile(${p}, c0 + ${4 * j}u, ${j}u)` : `bTile(bOff, ${p}, c0 + ${4 * j}u)`};`).join('\n    ')}
    ${blocks.map((b) => `${b.name} = ${b.name} + bt${b.j} * at${b.i};`).join('\n    ')}
  }`;
  const loop =
    unrollK === undefined
      ? `for (var p = 0u; p < u.k; p += 4u) ${step('p')}`
      : Array.from({ length: unrollK / 4 }, (_, s) => step(`${4 * s}u`)).join('\n  ');
  const rowBase = t.wgY === 1 ? 'wid.y' : 'gid.y';
  return `${matmulBindings(l, customB && { wgsl: customB.bindings, count: customB.count })}
${u.declaration(uniformBinding(l, customB?.count))}
${matmulHelpers(l, customB !== undefined)}${customB ? `\n${customB.wgsl}` : ''}
@compute @workgroup_size(${t.wgX}, ${t.wgY}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let c0 = gid.x * ${t.cols}u;
  let r0 = ${rowBase} * ${t.rows}u;
  if (r0 >= u.m || c0 >= u.n) { return; }
  let t = wid.z + u.b0;
  ${batchOffsets(l.batchRank, 't')}${customB ? `\n  ${customB.prologue}` : ''}
  ${blocks.map((b) => `var ${b.name} = mat4x4<f32>();`).join('\n  ')}
  ${loop}
  ${blocks.flatMap((b) => [0, 1, 2, 3].map((r) => `store4(cOff, r0 + ${4 * b.i + r}u, c0 + ${4 * b.j}u, ${b.name}[${r}]);`)).join('\n  ')}
}`;
}
