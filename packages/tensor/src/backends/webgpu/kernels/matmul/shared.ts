import type { Uniforms } from '../../wgsl.js';
import { type MatmulLayout, batchOffsets, layoutKey, matmulBindings, matmulHelpers, uniformBinding } from './wgsl.js';

/** Shape of the workgroup-memory kernel: threads, each thread's register block, and the k depth of one tile. */
export interface SharedTileShape {
  /** Threads along columns; each owns `cols` adjacent columns. */
  readonly wgX: number;
  /** Threads along rows; each owns `rows` adjacent rows. */
  readonly wgY: number;
  /** Rows per thread: 4 or 8. */
  readonly rows: 4 | 8;
  /** Columns per thread: 4 or 8. */
  readonly cols: 4 | 8;
  /** k depth of one workgroup-memory tile (a multiple of 4). */
  readonly tileK: number;
}

/** Output rows and columns one workgroup of `t` covers. */
export function sharedBlock(t: SharedTileShape): { bm: number; bn: number } {
  return { bm: t.wgY * t.rows, bn: t.wgX * t.cols };
}

/** Workgroup memory of `t` in bytes: two A and two B tiles of f32 (double buffering). */
export function sharedStorageBytes(t: SharedTileShape): number {
  const { bm, bn } = sharedBlock(t);
  return 2 * t.tileK * (bm + bn) * 4;
}

/**
 * Whether the vec4 loads of one tile divide evenly among the threads (the loads are
 * unrolled, each thread doing the same count).
 */
export function sharedShapeValid(t: SharedTileShape): boolean {
  const { bm, bn } = sharedBlock(t);
  const threads = t.wgX * t.wgY;
  return t.tileK % 4 === 0 && ((bm * t.tileK) / 4) % threads === 0 && ((bn * t.tileK) / 4) % threads === 0;
}

/**
 * Register-tiled matmul over double-buffered workgroup-memory tiles. A workgroup owns a
 * `bm x bn` output block (`sharedBlock`); per k-tile its threads load the `bm x tileK`
 * slice of A and the `tileK x bn` slice of B with `vec4` loads (each element read from
 * storage once per workgroup instead of once per thread), stored k-major as `vec4`s of
 * 4 rows (A) or 4 columns (B); each thread then accumulates its `rows x cols` block with
 * one `vec4` FMA per output row and 4 columns, reading one `vec4` of A and of B per
 * 16 FMAs. The next tile's loads are issued before the current tile is consumed and
 * land in the other buffer, so one barrier per tile suffices.
 *
 * Tiles overhanging m, n or k read zeros (guarded loads), so any size is exact.
 * Dispatch: x = ceil(n / bn), y = ceil(m / bm), z = batch.
 */
export function sharedSource(l: MatmulLayout, u: Uniforms, t: SharedTileShape): { key: string; source: () => string } {
  if (!sharedShapeValid(t)) throw new RangeError(`matmul: shared tile ${JSON.stringify(t)} does not split its loads evenly across threads`);
  const key = `matmul/shared/${t.wgX}x${t.wgY}r${t.rows}c${t.cols}k${t.tileK}/${layoutKey(l)}`;
  const { bm, bn } = sharedBlock(t);
  const threads = t.wgX * t.wgY;
  const bm4 = bm / 4;
  const bn4 = bn / 4;
  const tk = t.tileK;
  const aLoads = (bm * tk) / 4 / threads;
  const bLoads = (bn * tk) / 4 / threads;
  const ri = Array.from({ length: t.rows / 4 }, (_, i) => i);
  const cj = Array.from({ length: t.cols / 4 }, (_, j) => j);
  const acc = ri.flatMap((i) => cj.flatMap((j) => [0, 1, 2, 3].map((r) => ({ i, j, r, name: `c${i}_${j}_${r}` }))));
  // Aligned layouts read unguarded vec4s: guard whole blocks (m, n, k are multiples of 4 there).
  const guard = (load: string, ok: string) => (l.aligned ? `select(vec4<f32>(0.0), ${load}, ${ok})` : load);
  // The global -> register load of vec4 number `q` of a tile, and where it lands in workgroup memory.
  const aLoad = (q: string) =>
    l.transposeA
      ? // A stored [k, m]: vec4 along m, stored as is.
        { fetch: guard(`a4m(aOff, row0 + (${q} % ${bm4}u) * 4u, k0 + ${q} / ${bm4}u)`, `row0 + (${q} % ${bm4}u) * 4u < u.m && k0 + ${q} / ${bm4}u < u.k`), put: (v: string, b: string) => `As[${b} + ${q}] = ${v};` }
      : // A stored [m, k]: vec4 along k, scattered into 4 k-rows of the tile.
        {
          fetch: guard(`a4k(aOff, row0 + ${q} / ${tk / 4}u, k0 + (${q} % ${tk / 4}u) * 4u)`, `row0 + ${q} / ${tk / 4}u < u.m && k0 + (${q} % ${tk / 4}u) * 4u < u.k`),
          put: (v: string, b: string) =>
            `{ let rr = ${q} / ${tk / 4}u; let kk = (${q} % ${tk / 4}u) * 4u; ${[0, 1, 2, 3].map((e) => `As[${b} + (kk + ${e}u) * ${bm4}u + rr / 4u][rr % 4u] = ${v}[${e}];`).join(' ')} }`,
        };
  const bLoad = (q: string) =>
    l.transposeB
      ? // B stored [n, k]: vec4 along k, scattered.
        {
          fetch: guard(`b4k(bOff, k0 + (${q} % ${tk / 4}u) * 4u, col0 + ${q} / ${tk / 4}u)`, `col0 + ${q} / ${tk / 4}u < u.n && k0 + (${q} % ${tk / 4}u) * 4u < u.k`),
          put: (v: string, b: string) =>
            `{ let cc = ${q} / ${tk / 4}u; let kk = (${q} % ${tk / 4}u) * 4u; ${[0, 1, 2, 3].map((e) => `Bs[${b} + (kk + ${e}u) * ${bn4}u + cc / 4u][cc % 4u] = ${v}[${e}];`).join(' ')} }`,
        }
      : // B stored [k, n]: vec4 along n, stored as is.
        { fetch: guard(`b4n(bOff, k0 + ${q} / ${bn4}u, col0 + (${q} % ${bn4}u) * 4u)`, `col0 + (${q} % ${bn4}u) * 4u < u.n && k0 + ${q} / ${bn4}u < u.k`), put: (v: string, b: string) => `Bs[${b} + ${q}] = ${v};` };
  const aq = Array.from({ length: aLoads }, (_, s) => `(tid + ${s * threads}u)`);
  const bq = Array.from({ length: bLoads }, (_, s) => `(tid + ${s * threads}u)`);
  const fetchAll = `${aq.map((q, s) => `la${s} = ${aLoad(q).fetch};`).join('\n    ')}
    ${bq.map((q, s) => `lb${s} = ${bLoad(q).fetch};`).join('\n    ')}`;
  const putAll = (ab: string, bb: string) => `${aq.map((q, s) => aLoad(q).put(`la${s}`, ab)).join('\n    ')}
    ${bq.map((q, s) => bLoad(q).put(`lb${s}`, bb)).join('\n    ')}`;
  const source = () => `${matmulBindings(l)}
${u.declaration(uniformBinding(l))}
${matmulHelpers(l)}
var<workgroup> As: array<vec4<f32>, ${2 * tk * bm4}>;
var<workgroup> Bs: array<vec4<f32>, ${2 * tk * bn4}>;
@compute @workgroup_size(${t.wgX}, ${t.wgY}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tid = lid.y * ${t.wgX}u + lid.x;
  let row0 = wid.y * ${bm}u;
  let col0 = wid.x * ${bn}u;
  let t = wid.z + u.b0;
  ${batchOffsets(l.batchRank, 't')}
  ${acc.map((c) => `var ${c.name} = vec4<f32>(0.0);`).join('\n  ')}
  ${aq.map((_, s) => `var la${s}: vec4<f32>;`).join('\n  ')}
  ${bq.map((_, s) => `var lb${s}: vec4<f32>;`).join('\n  ')}
  let tiles = (u.k + ${tk - 1}u) / ${tk}u;
  var k0 = 0u;
  if (tiles > 0u) {
    ${fetchAll}
    ${putAll('0u', '0u')}
  }
  workgroupBarrier();
  for (var s = 0u; s < tiles; s++) {
    let cur = s % 2u;
    k0 = (s + 1u) * ${tk}u;
    let more = s + 1u < tiles;
    if (more) {
    ${fetchAll}
    }
    let ab = cur * ${tk * bm4}u + lid.y * ${t.rows / 4}u;
    let bb = cur * ${tk * bn4}u + lid.x * ${t.cols / 4}u;
    for (var kk = 0u; kk < ${tk}u; kk++) {
      ${ri.map((i) => `let a${i} = As[ab + kk * ${bm4}u + ${i}u];`).join('\n      ')}
      ${cj.map((j) => `let b${j} = Bs[bb + kk * ${bn4}u + ${j}u];`).join('\n      ')}
      ${acc.map((c) => `${c.name} = fma(vec4<f32>(a${c.i}[${c.r}]), b${c.j}, ${c.name});`).join('\n      ')}
    }
    if (more) {
    ${putAll(`(1u - cur) * ${tk * bm4}u`, `(1u - cur) * ${tk * bn4}u`)}
    }
    workgroupBarrier();
  }
  let r0 = row0 + lid.y * ${t.rows}u;
  let c0 = col0 + lid.x * ${t.cols}u;
  ${acc.map((c) => `store4(cOff, r0 + ${4 * c.i + c.r}u, c0 + ${4 * c.j}u, ${c.name});`).join('\n  ')}
}`;
  return { key, source };
}
