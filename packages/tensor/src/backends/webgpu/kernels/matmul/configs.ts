import { MAX_WORKGROUPS_PER_DIM } from '../../constants.js';
import { rowGrid } from '../../wgsl.js';
import type { Uniforms } from '../../wgsl.js';
import { type SharedTileShape, sharedBlock, sharedShapeValid, sharedSource, sharedStorageBytes } from './shared.js';
import { SIMPLE_WG, simpleSource } from './simple.js';
import { SPLIT_K_MAX_N, splitKSource, splitKStorageBytes } from './split-k.js';
import { type TileShape, tiledSource } from './tiled.js';
import type { MatmulLayout } from './wgsl.js';

/**
 * One concrete matmul kernel: the unit the heuristic and the autotuner choose.
 * - `tile`: register tile read straight from storage (no workgroup memory);
 * - `smallk`: the same with the k loop unrolled (k <= 16);
 * - `shared`: register tile over double-buffered workgroup-memory tiles;
 * - `splitk`: k split across a workgroup for skinny outputs (n <= 8), reduced in
 *   workgroup memory, or with `subgroupAdd` first when `subgroups`;
 * - `simple`: one output per thread (tiny shader for slow shader compilers).
 */
export type MatmulConfig =
  | { readonly kind: 'tile' | 'smallk'; readonly tile: TileShape }
  | { readonly kind: 'shared'; readonly tile: SharedTileShape }
  | { readonly kind: 'splitk'; readonly subgroups: boolean }
  | { readonly kind: 'simple' };

/** The problem one dispatch solves (sizes of one batch entry). */
export interface MatmulProblem {
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

/** What the adapter allows: workgroup memory, threads per workgroup, subgroup support. */
export interface MatmulDeviceClass {
  readonly workgroupStorageBytes: number;
  readonly maxInvocations: number;
  readonly subgroups: boolean;
}

/** Largest k handled by the unrolled small-k variant. */
export const SMALL_K_MAX = 16;

/** Stable text id of a configuration (pipeline keys, the tuning cache, bench notes). */
export function configId(c: MatmulConfig): string {
  switch (c.kind) {
    case 'tile':
    case 'smallk':
      return `${c.kind}/${c.tile.wgX}x${c.tile.wgY}r${c.tile.rows}c${c.tile.cols}`;
    case 'shared':
      return `shared/${c.tile.wgX}x${c.tile.wgY}r${c.tile.rows}c${c.tile.cols}k${c.tile.tileK}`;
    case 'splitk':
      return c.subgroups ? 'splitk/sg' : 'splitk';
    case 'simple':
      return 'simple';
  }
}

const TILE_RE = /^(tile|smallk)\/(\d+)x(\d+)r([48])c([48])$/;
const SHARED_RE = /^shared\/(\d+)x(\d+)r([48])c([48])k(\d+)$/;

/** The configuration of an id from {@link configId}, or null for an unknown id (a stale cache entry). */
export function parseConfigId(id: string): MatmulConfig | null {
  const t = TILE_RE.exec(id);
  if (t) return { kind: t[1] as 'tile' | 'smallk', tile: { wgX: +t[2], wgY: +t[3], rows: +t[4] as 4 | 8, cols: +t[5] as 4 | 8 } };
  const s = SHARED_RE.exec(id);
  if (s) {
    const tile: SharedTileShape = { wgX: +s[1], wgY: +s[2], rows: +s[3] as 4 | 8, cols: +s[4] as 4 | 8, tileK: +s[5] };
    return sharedShapeValid(tile) ? { kind: 'shared', tile } : null;
  }
  if (id === 'splitk') return { kind: 'splitk', subgroups: false };
  if (id === 'splitk/sg') return { kind: 'splitk', subgroups: true };
  if (id === 'simple') return { kind: 'simple' };
  return null;
}

/** Register tiles: 8 rows x 4 columns per thread in general, 2 x 32 threads for n <= 8, 4 x 4 for small k and odd sizes. */
export const TILE: TileShape = { wgX: 8, wgY: 8, rows: 8, cols: 4 };
export const SMALL_K_TILE: TileShape = { wgX: 8, wgY: 8, rows: 4, cols: 4 };
export const NARROW_TILE: TileShape = { wgX: 2, wgY: 32, rows: 8, cols: 4 };
export const GUARDED_TILE: TileShape = { wgX: 8, wgY: 8, rows: 4, cols: 4 };
/**
 * 8 x 8 outputs per thread (more reuse per load, more registers): a tuning candidate, and
 * the register tile software adapters get by default (lavapipe keeps a thread's tile in
 * one SIMD lane's registers, where the wider tile halves the loads per FMA; it measured
 * 1.2-1.5x faster than {@link TILE} on every aligned training shape of GPT-2 small).
 */
export const WIDE_TILE: TileShape = { wgX: 8, wgY: 8, rows: 8, cols: 8 };
/** Default workgroup-memory tile: 64 x 64 outputs per workgroup of 16 x 8 threads, 8 x 4 each, k tiles of 16. */
export const SHARED_TILE: SharedTileShape = { wgX: 16, wgY: 8, rows: 8, cols: 4, tileK: 16 };

/**
 * Workgroup-memory tile software adapters get for long reductions and large squares:
 * 64 x 64 outputs per workgroup of 8 x 8 threads, 8 x 8 each (faster than the wide
 * register tile on lavapipe from k = 8192, and at 1024^3).
 */
export const SOFTWARE_SHARED_TILE: SharedTileShape = { wgX: 8, wgY: 8, rows: 8, cols: 8, tileK: 16 };

/** Workgroup-memory tiles the autotuner times (the default first). */
const SHARED_CANDIDATES: readonly SharedTileShape[] = [
  SHARED_TILE,
  { wgX: 8, wgY: 8, rows: 8, cols: 4, tileK: 16 },
  SOFTWARE_SHARED_TILE,
  { wgX: 16, wgY: 16, rows: 4, cols: 4, tileK: 16 },
  { wgX: 8, wgY: 8, rows: 4, cols: 4, tileK: 32 },
];

/** Whether configuration `c` can serve problem `p` on device class `d` (limits and the variant's own range). */
export function configFits(c: MatmulConfig, p: MatmulProblem, d: MatmulDeviceClass): boolean {
  switch (c.kind) {
    case 'tile':
      return c.tile.wgX * c.tile.wgY <= d.maxInvocations;
    case 'smallk':
      return p.k <= SMALL_K_MAX && c.tile.wgX * c.tile.wgY <= d.maxInvocations;
    case 'shared':
      return sharedShapeValid(c.tile) && c.tile.wgX * c.tile.wgY <= d.maxInvocations && sharedStorageBytes(c.tile) <= d.workgroupStorageBytes;
    case 'splitk':
      return p.n <= SPLIT_K_MAX_N && splitKStorageBytes(p.n) <= d.workgroupStorageBytes && (!c.subgroups || d.subgroups);
    case 'simple':
      return true;
  }
}

/** Every configuration worth timing for `p` on `d`, register tiles first. */
export function candidateConfigs(p: MatmulProblem, aligned: boolean, d: MatmulDeviceClass): MatmulConfig[] {
  const all: MatmulConfig[] = [
    { kind: 'tile', tile: aligned ? (p.n <= SPLIT_K_MAX_N ? NARROW_TILE : TILE) : GUARDED_TILE },
    ...(aligned && p.n > SPLIT_K_MAX_N ? [{ kind: 'tile' as const, tile: SMALL_K_TILE }, { kind: 'tile' as const, tile: WIDE_TILE }] : []),
    { kind: 'smallk', tile: SMALL_K_TILE },
    ...SHARED_CANDIDATES.map((tile) => ({ kind: 'shared' as const, tile })),
    { kind: 'splitk', subgroups: false },
    { kind: 'splitk', subgroups: true },
  ];
  return all.filter((c) => configFits(c, p, d));
}

/** WGSL source and workgroup grid of configuration `c` for one dispatch of `chunk` batch entries. */
export function buildMatmul(
  c: MatmulConfig,
  l: MatmulLayout,
  u: Uniforms,
  p: MatmulProblem,
  chunk: number,
): { spec: { key: string; source: () => string }; wg: [number, number, number] } {
  const { m, k, n } = p;
  let spec: { key: string; source: () => string };
  let wg: [number, number, number];
  switch (c.kind) {
    case 'simple':
      spec = simpleSource(l, u);
      wg = [Math.ceil(n / SIMPLE_WG), Math.ceil(m / SIMPLE_WG), chunk];
      break;
    case 'splitk': {
      spec = splitKSource(l, u, Math.ceil(n / 4), c.subgroups);
      const [x, y] = rowGrid(Math.ceil(m / 4));
      wg = [x, y, chunk];
      break;
    }
    case 'shared': {
      spec = sharedSource(l, u, c.tile);
      const { bm, bn } = sharedBlock(c.tile);
      wg = [Math.ceil(n / bn), Math.ceil(m / bm), chunk];
      break;
    }
    default:
      spec = tiledSource(l, u, c.tile, c.kind === 'smallk' ? Math.ceil(k / 4) * 4 : undefined);
      wg = [Math.ceil(n / c.tile.cols / c.tile.wgX), Math.ceil(m / c.tile.rows / c.tile.wgY), chunk];
  }
  if (wg[0] > MAX_WORKGROUPS_PER_DIM || wg[1] > MAX_WORKGROUPS_PER_DIM) {
    throw new RangeError(`matmul: ${m}x${k} by ${k}x${n} needs ${wg[0]}x${wg[1]} workgroups (${configId(c)}), more than the WebGPU limit ${MAX_WORKGROUPS_PER_DIM} per dimension`);
  }
  return { spec, wg };
}
