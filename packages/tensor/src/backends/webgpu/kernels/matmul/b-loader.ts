/**
 * The register-tiled matmul (`tiled.ts`) with a caller-supplied B operand: kernel authors
 * whose right operand is not a plain matrix in storage (a packed 4-bit weight decoded
 * tile by tile, a gathered or generated matrix) supply WGSL that returns B's 4 x 4
 * blocks, and get the tiled product without ever writing B to memory.
 */
import type { Uniforms } from '../../wgsl.js';
import { MAX_WORKGROUPS_PER_DIM } from '../../constants.js';
import { type TileShape, tiledWgsl } from './tiled.js';
import { type MatmulLayout, layoutKey } from './wgsl.js';

/**
 * The B operand of {@link tiledMatmulWithB}, `B [k, n]` (row `p`, column `c`).
 * - `bindings(first)`: WGSL storage declarations of the loader's buffers at bindings
 *   `first .. first + count - 1` (`group(0)`);
 * - `wgsl`: functions and module-scope declarations defining
 *   `fn bTile(p: u32, c: u32, j: u32) -> mat4x4<f32>`, whose column `i` is row `p + i` of B
 *   over columns `c .. c + 3` (zeros outside `[u.k, u.n]`; columns past `u.n` are never
 *   stored, rows past `u.k` must be zero). `p` steps by 4 from 0 in order; `j` is the
 *   thread's column block (`c = c0 + 4 j`, a literal at every call, `0 .. cols / 4 - 1`),
 *   so a loader can keep per-block state (a cached scale) in `var<private>` arrays
 *   indexed by it. It may read `u.k`, `u.n` and the loader's own uniforms;
 * - `prologue`: WGSL statements run once per invocation before the k loop (loading a
 *   code table into `var<private>` registers), or `''`;
 * - `key`: the loader's pipeline-key fragment (flags and classes only, never sizes: one
 *   pipeline serves every size).
 */
export interface MatmulBLoader {
  readonly key: string;
  readonly count: number;
  readonly bindings: (first: number) => string;
  readonly wgsl: string;
  readonly prologue: string;
}

/** What a tiled product with a custom B reads and writes (single matrix, no batch). */
export interface TiledMatmulWithBOptions {
  /** A `[m, k]` row-major (`lda = k`) and C `[m, n]` (`ldc = n`) are read / written as `vec4`s (m, n and k multiples of 4). */
  readonly aligned: boolean;
  /** f16 A, C (and bias) storage; accumulation stays f32 and C is rounded once on store. */
  readonly half: boolean;
  /** A bias row `D [n]` is added as C is stored (binding after the loader's; `u.alpha` must be 1). */
  readonly bias: boolean;
  readonly tile: TileShape;
  readonly loader: MatmulBLoader;
}

/** A program spec (key, lazily built WGSL) and its workgroup grid. */
export interface TiledMatmulWithB {
  readonly key: string;
  readonly source: () => string;
  /** Storage inputs in binding order: A, the loader's buffers, then the bias if any. */
  readonly inputCount: number;
  readonly grid: [number, number, number];
}

/**
 * Uniforms the tiled kernel reads, for a contiguous `A [m, k]` times `B [k, n]`: the
 * sizes, zero offsets, leading dimensions and (with a bias) `alpha = 1`. The caller
 * appends its loader's uniforms to the result.
 */
export function tiledMatmulUniforms(u: Uniforms, m: number, k: number, n: number, bias: boolean): Uniforms {
  u.u32('m', m).u32('k', k).u32('n', n).u32('b0', 0).u32('oa', 0).u32('ob', 0).u32('oc', 0).u32('lda', k).u32('ldb', n).u32('ldc', n);
  return bias ? u.f32('alpha', 1) : u;
}

/**
 * `C [m, n] = A [m, k] B (+ bias)` on the register tile `o.tile` with B from `o.loader`,
 * for the uniforms `u` (built with {@link tiledMatmulUniforms}, then the loader's). The
 * key holds the tile, the layout class and the loader's key, never sizes.
 */
export function tiledMatmulWithB(o: TiledMatmulWithBOptions, u: Uniforms, m: number, n: number): TiledMatmulWithB {
  const l: MatmulLayout = { transposeA: false, transposeB: false, aligned: o.aligned, batchRank: 0, half: o.half, ...(o.bias ? { epilogue: 'row' as const } : {}) };
  const t = o.tile;
  const key = `matmul/tile-b/${t.wgX}x${t.wgY}r${t.rows}c${t.cols}/${layoutKey(l)}/${o.loader.key}`;
  const wgX = Math.ceil(n / t.cols / t.wgX);
  const wgY = Math.ceil(m / t.rows / t.wgY);
  if (wgX > MAX_WORKGROUPS_PER_DIM || wgY > MAX_WORKGROUPS_PER_DIM) {
    throw new RangeError(`tiledMatmulWithB: ${m} x ${n} output needs ${wgX} x ${wgY} workgroups, more than the WebGPU limit ${MAX_WORKGROUPS_PER_DIM} per dimension`);
  }
  const customB = { bindings: o.loader.bindings(1), count: o.loader.count, wgsl: o.loader.wgsl, prologue: o.loader.prologue };
  return { key, source: () => tiledWgsl(l, u, t, undefined, customB), inputCount: 1 + o.loader.count + (o.bias ? 1 : 0), grid: [wgX, wgY, 1] };
}

/** Register tiles a custom-B product may use: re-exported shapes of the plain matmul's heuristic. */
export { TILE as TILED_DEFAULT_TILE, WIDE_TILE as TILED_WIDE_TILE, GUARDED_TILE as TILED_GUARDED_TILE } from './configs.js';
