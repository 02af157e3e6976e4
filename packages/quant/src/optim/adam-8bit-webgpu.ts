/**
 * The 8-bit blockwise Adam step on WebGPU: ONE fused kernel over the blocks of every
 * parameter of a step (or of a page of a paged optimizer), one workgroup (256 threads)
 * per block of 256 elements: dequantize both states, fp32 update, block absmax by a
 * workgroup max-reduction, parameter update, requantize (binary search over the dynamic
 * maps held in workgroup memory), four codes packed per u32 word. The arithmetic repeats
 * `adam8bitBlockwiseHost` operation by operation.
 *
 * State layout of one item (one u32 range, also the layout of a host page):
 * `[codes1 (nb*64 words) | codes2 (nb*64) | absmax1 bits (nb) | absmax2 bits (nb)]` for
 * `nb` blocks. As the fused AdamW does (`@webpeft/optim`'s `fused-webgpu.ts`), the items
 * of a step are packed with buffer copies (ordered with the dispatches, no pipeline or
 * bind group) into flat parameter, gradient and state buffers that fit one storage
 * binding each; a small segment table (first block, blocks, elements, offsets and the
 * bitsandbytes scalars of each item, whose step counts and groups may differ) lets every
 * workgroup find its item by binary search; the updated parameters and states are copied
 * back. A step whose one item is bound whole needs no copy.
 */
import { tensor, withMemoryTag } from '@webpeft/tensor';
import { Uniforms, type WebGpuKernelContext, program, registerInPlaceKernel, storageBindings } from '@webpeft/tensor/kernel';
import { OPTIM_BLOCK, WORDS_PER_BLOCK } from './adam-8bit-host.js';
import type { Adam8bitItem } from './optim-ops.js';

function quantFn(name: string, code: string, signed: boolean): string {
  return `fn ${name}(x: f32) -> u32 {
  var pivot = 127u;
  var upperPivot = 255u;
  var lowerPivot = 0u;
  var lower = ${signed ? '-1.0' : '0.0'};
  var upper = 1.0;
  var val = ${code}[127u];
  for (var i = 64u; i > 0u; i = i >> 1u) {
    if (x > val) { lowerPivot = pivot; lower = val; pivot = pivot + i; }
    else { upperPivot = pivot; upper = val; pivot = pivot - i; }
    val = ${code}[pivot];
  }
  if (x > val) { if (x > (upper + val) * 0.5) { return upperPivot; } return pivot; }
  if (x < (lower + val) * 0.5) { return lowerPivot; }
  return pivot;
}`;
}

function source(u: Uniforms): string {
  return `
${storageBindings([['gs', 'f32'], ['qmap', 'f32'], ['segTable', 'u32']], [['ps', 'f32'], ['q', 'u32']])}
${u.declaration(5)}
var<workgroup> code1: array<f32, 256>;
var<workgroup> code2: array<f32, 256>;
var<workgroup> red1: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;
var<workgroup> cw1: array<u32, 256>;
var<workgroup> cw2: array<u32, 256>;
${quantFn('quant1', 'code1', true)}
${quantFn('quant2', 'code2', false)}
fn isFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  code1[t] = qmap[t];
  code2[t] = qmap[256u + t];
  workgroupBarrier();
  let blk = wid.x + wid.y * nwg.x;
  if (blk >= u.nb) { return; }
  // The item of this block: the last segment whose first block is <= blk.
  var lo = 0u;
  var hi = u.segs;
  loop {
    if (hi - lo <= 1u) { break; }
    let mid = (lo + hi) / 2u;
    if (segTable[mid * ${SEG}u] <= blk) { lo = mid; } else { hi = mid; }
  }
  let m = lo * ${SEG}u;
  let lb = blk - segTable[m];
  let nbs = segTable[m + 1u];
  let so = segTable[m + 4u];
  let start = segTable[m + 3u] + lb * 256u;
  let valid = min(256u, segTable[m + 2u] - lb * 256u);
${SCALARS.map((n, i) => `  let ${n} = bitcast<f32>(segTable[m + ${8 + i}u]);`).join('\n')}
  let live = t < valid;
  var g = 0.0;
  var c1 = 128u;
  var c2 = 0u;
  let w = so + lb * 64u + t / 4u;
  let sh = (t % 4u) * 8u;
  if (live) {
    g = gs[start + t];
    c1 = (q[w] >> sh) & 255u;
    c2 = (q[nbs * 64u + w] >> sh) & 255u;
  }
  let a1 = bitcast<f32>(q[so + nbs * 128u + lb]);
  let a2 = bitcast<f32>(q[so + nbs * 129u + lb]);
  var s1 = 0.0;
  var s2 = 0.0;
  if (isFinite(g)) {
    s2 = code2[c2] * a2;
    s2 = s2 * beta2 + oneMinusBeta2 * g * g;
    s1 = code1[c1] * a1;
    s1 = s1 * beta1 + oneMinusBeta1 * g;
  }
  red1[t] = abs(s1);
  red2[t] = abs(s2);
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (t < s) {
      red1[t] = max(red1[t], red1[t + s]);
      red2[t] = max(red2[t], red2[t + s]);
    }
    workgroupBarrier();
  }
  let m1 = red1[0];
  let m2 = red2[0];
  if (live && isFinite(g)) {
    var p = ps[start + t];
    p = p + stepSize * (s1 / (sqrt(s2) + correctedEps));
    if (hasDecay != 0.0) { p = p * decay; }
    ps[start + t] = p;
  }
  // An all-zero block divides 0 / 0: NaN on CUDA, which quantize_2D maps to code 0.
  var q1 = 0u;
  var q2 = 0u;
  if (m1 != 0.0) { q1 = quant1(s1 / m1); }
  if (m2 != 0.0) { q2 = quant2(s2 / m2); }
  if ((bitcast<u32>(code1[q1]) >> 31u) != (bitcast<u32>(s1) >> 31u)) {
    if (s1 > 0.0) { q1 = (q1 + 1u) & 255u; } else { q1 = (q1 + 255u) & 255u; }
  }
  cw1[t] = q1;
  cw2[t] = q2;
  workgroupBarrier();
  if (t < 64u) {
    let b = 4u * t;
    q[so + lb * 64u + t] = cw1[b] | (cw1[b + 1u] << 8u) | (cw1[b + 2u] << 16u) | (cw1[b + 3u] << 24u);
    q[so + nbs * 64u + lb * 64u + t] = cw2[b] | (cw2[b + 1u] << 8u) | (cw2[b + 2u] << 16u) | (cw2[b + 3u] << 24u);
  }
  if (t == 0u) {
    q[so + nbs * 128u + lb] = bitcast<u32>(m1);
    q[so + nbs * 129u + lb] = bitcast<u32>(m2);
  }
}`;
}

/** One workgroup per block, 2-D past 65535 blocks (the kernel computes the block index). */
function blockGrid(nb: number): [number, number, number] {
  const max = 65535;
  return nb <= max ? [nb, 1, 1] : [max, Math.ceil(nb / max), 1];
}

const SCALARS = ['beta1', 'oneMinusBeta1', 'beta2', 'oneMinusBeta2', 'stepSize', 'correctedEps', 'decay', 'hasDecay'] as const;

/**
 * u32 words per segment of the table: first block, blocks, elements, element offset in
 * the flat parameter, word offset in the flat state, 3 unused, then the 8 scalars' bits.
 */
const SEG = 16;

/** A range of one item's blocks placed in a batch. */
interface Piece {
  item: Adam8bitItem;
  /** First block of the range, relative to the item's `blockBase`, and its block count. */
  first: number;
  blocks: number;
  /** Elements of the range (the last block of a parameter may be partial). */
  elements: number;
}

interface Batch {
  pieces: Piece[];
  elements: number;
  words: number;
  blocks: number;
}

/** Splits the items into ranges of at most `maxBlocks` blocks and those into batches of at most `maxBlocks` blocks in all. */
function planBatches(items: readonly Adam8bitItem[], maxBlocks: number): Batch[] {
  const batches: Batch[] = [];
  let cur: Batch | null = null;
  for (const item of items) {
    const end = Math.min(item.param.size, (item.blockBase + item.blocks) * OPTIM_BLOCK);
    for (let first = 0; first < item.blocks; ) {
      if (!cur || cur.blocks >= maxBlocks) {
        cur = { pieces: [], elements: 0, words: 0, blocks: 0 };
        batches.push(cur);
      }
      const blocks = Math.min(item.blocks - first, maxBlocks - cur.blocks);
      const elements = Math.min(end, (item.blockBase + first + blocks) * OPTIM_BLOCK) - (item.blockBase + first) * OPTIM_BLOCK;
      cur.pieces.push({ item, first, blocks, elements });
      cur.blocks += blocks;
      cur.elements += elements;
      cur.words += blocks * WORDS_PER_BLOCK;
      first += blocks;
    }
  }
  return batches;
}

/** The segment table of a batch whose pieces sit at the given element and word offsets. */
function segmentTable(pieces: readonly Piece[], elementAt: (j: number) => number, wordAt: (j: number) => number): Uint32Array {
  const table = new Uint32Array(pieces.length * SEG);
  const bits = new Float32Array(table.buffer);
  let block = 0;
  pieces.forEach((p, j) => {
    const o = j * SEG;
    table.set([block, p.blocks, p.elements, elementAt(j), wordAt(j)], o);
    SCALARS.forEach((n, i) => (bits[o + 8 + i] = p.item.scalars[n]));
    block += p.blocks;
  });
  return table;
}

/** True when `item` is one whole, unchunked parameter whose state is the whole `state` tensor: it is bound as it is. */
function bindsWhole(item: Adam8bitItem, ctx: WebGpuKernelContext): boolean {
  const whole = item.blockBase === 0 && item.blocks === Math.ceil(item.param.size / OPTIM_BLOCK);
  return whole && item.stateWord === 0 && item.state.size === item.blocks * WORDS_PER_BLOCK && !ctx.chunks(item.param) && !ctx.chunks(item.grad) && !ctx.chunks(item.state);
}

/** Registers the webgpu kernel of `Adam8bitStep`: one dispatch over the blocks of all items per batch that fits a binding. */
export function registerAdam8bitWebGpuKernel(): void {
  registerInPlaceKernel('Adam8bitStep', 'webgpu', ({ items, qmap }, ctx) => {
    const live = items.filter((it) => it.blocks > 0);
    if (live.length === 0) return;
    const prog = program('quant/adam8bit/segments', 3, 2, () => source(new Uniforms().u32('nb', 0).u32('segs', 0)));
    const upload = (table: Uint32Array) => withMemoryTag('optimizer', () => tensor(table, [table.length], { dtype: 'u32', backend: 'webgpu' }));
    if (live.length === 1 && bindsWhole(live[0], ctx)) {
      const it = live[0];
      const meta = upload(segmentTable([{ item: it, first: 0, blocks: it.blocks, elements: it.param.size }], () => 0, () => 0));
      ctx.dispatch(prog, [it.grad, qmap, meta], [it.param, it.state], new Uniforms().u32('nb', it.blocks).u32('segs', 1), blockGrid(it.blocks));
      meta.dispose();
      return;
    }
    // A binding holds the flat parameter (256 f32 per block) and the flat state (130 u32 per block).
    const maxBlocks = Math.floor(ctx.maxBindingBytes / (4 * OPTIM_BLOCK));
    for (const b of planBatches(live, maxBlocks)) {
      const elementOffsets: number[] = [];
      const wordOffsets: number[] = [];
      let e = 0;
      let w = 0;
      for (const p of b.pieces) {
        elementOffsets.push(e);
        wordOffsets.push(w);
        e += p.elements;
        w += p.blocks * WORDS_PER_BLOCK;
      }
      const scratch = withMemoryTag('optimizer', () => [ctx.output([b.elements], 'f32', 'Adam8bitStep'), ctx.output([b.elements], 'f32', 'Adam8bitStep'), ctx.output([b.words], 'u32', 'Adam8bitStep')]);
      const [ps, gs, qs] = scratch;
      const meta = upload(segmentTable(b.pieces, (j) => elementOffsets[j], (j) => wordOffsets[j]));
      try {
        // The state range of a piece: its own layout for `blocks` blocks, or (a range of
        // an item split across batches) four regions of the item's layout.
        const stateRegions = (p: Piece, j: number): [number, number, number][] => {
          const nb = p.item.blocks;
          const at = p.item.stateWord;
          const o = wordOffsets[j];
          if (p.first === 0 && p.blocks === nb) return [[at, o, nb * WORDS_PER_BLOCK]];
          return [
            [at + p.first * 64, o, p.blocks * 64],
            [at + nb * 64 + p.first * 64, o + p.blocks * 64, p.blocks * 64],
            [at + nb * 128 + p.first, o + p.blocks * 128, p.blocks],
            [at + nb * 129 + p.first, o + p.blocks * 129, p.blocks],
          ];
        };
        b.pieces.forEach((p, j) => {
          const from = ((p.item.blockBase + p.first) * OPTIM_BLOCK) * 4;
          ctx.copy(p.item.param, from, ps, elementOffsets[j] * 4, p.elements * 4);
          ctx.copy(p.item.grad, from, gs, elementOffsets[j] * 4, p.elements * 4);
          for (const [src, dst, len] of stateRegions(p, j)) ctx.copy(p.item.state, src * 4, qs, dst * 4, len * 4);
        });
        ctx.dispatch(prog, [gs, qmap, meta], [ps, qs], new Uniforms().u32('nb', b.blocks).u32('segs', b.pieces.length), blockGrid(b.blocks));
        b.pieces.forEach((p, j) => {
          ctx.copy(ps, elementOffsets[j] * 4, p.item.param, ((p.item.blockBase + p.first) * OPTIM_BLOCK) * 4, p.elements * 4);
          for (const [src, dst, len] of stateRegions(p, j)) ctx.copy(qs, dst * 4, p.item.state, src * 4, len * 4);
        });
      } finally {
        for (const t of scratch) t.dispose();
        meta.dispose();
      }
    }
  });
}
