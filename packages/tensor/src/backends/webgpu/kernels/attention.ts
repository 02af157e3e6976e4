/**
 * WebGPU kernels of the fused attention ops (FlashAttention's forward, FlashAttention-2's
 * backward), one thread per query row (forward, `dq`) or per key row (`dk`, `dv`):
 * the other side is streamed through workgroup memory in tiles, and scores and
 * probabilities live only in registers. The WGSL is f32 throughout: f16 inputs are
 * widened by a `Cast` kernel first (exact) and f16 gradients rounded once at the end,
 * the semantics of every f16 kernel here. Loading f16 inside these loops instead made
 * software Vulkan (lavapipe) take 29 s to compile the forward and 174 s the backward
 * (Dh 32), against under a second in f32; the widened copies are `O(T * Dh)`, not
 * `O(T * L)`. A native f16-load variant for real GPUs is future work.
 *
 * Masking: with `causal`, query `i` sees keys `j <= L - T + i`. Without a bias the
 * masked keys are skipped (their probability is exactly 0: every row sees key 0) and so
 * are tiles wholly in the future. With a bias, a masked key scores
 * `q.k * scale + min(bias, causal)` as in the eager attention, so a row whose every key
 * is masked (a left-pad query) averages all keys uniformly, as eager attention does.
 */
import type { AttentionAttrs } from '../../../op-names.js';
import { ShapeError, fmtShape } from '../../../errors.js';
import { registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { MAX_WORKGROUPS_PER_DIM } from '../constants.js';
import { checkF16 } from '../f16.js';
import { program } from '../program.js';
import { Uniforms, storageBindings, wgslType } from '../wgsl.js';

/**
 * Threads (query rows, or key rows in the `dk`/`dv` kernel) per workgroup. 32 keeps a
 * short sequence (generation, small tests) from idling most of a workgroup while still
 * sharing each loaded tile among many rows.
 */
const ROWS_PER_WORKGROUP = 32;

/**
 * Most rows of the streamed side per tile. A tile of keys and values (or of queries and
 * output gradients) takes `2 * tile * Dh * 4` bytes of workgroup memory, so the tile
 * shrinks for wide heads to stay within `maxComputeWorkgroupStorageSize` (16 KiB by
 * default: 32 rows at Dh 64 in the forward, 16 in the backward's larger tile).
 */
const MAX_TILE = 32;

/** Widest head dimension served: each thread keeps up to four rows of `Dh` floats in registers. */
const MAX_HEAD_DIM = 256;

/** Largest power-of-two tile up to {@link MAX_TILE} whose `floatsPerRow` f32 rows fit the workgroup memory limit. */
function tileRows(ctx: WebGpuKernelContext, op: string, floatsPerRow: number): number {
  const limit = ctx.limits.maxComputeWorkgroupStorageSize;
  let tile = MAX_TILE;
  while (tile > 1 && tile * floatsPerRow * 4 > limit) tile /= 2;
  if (tile * floatsPerRow * 4 > limit) throw new ShapeError(`${op}: one tile row of ${floatsPerRow} floats exceeds the adapter's ${limit} bytes of workgroup memory`);
  return tile;
}

/** The shape facts every attention kernel reads, checked against the kernels' limits. */
interface AttentionShape {
  b: number;
  h: number;
  hkv: number;
  t: number;
  l: number;
  dh: number;
  bias: Tensor | null;
}

function shapeOf(op: string, q: Tensor, k: Tensor, bias: Tensor | undefined): AttentionShape {
  const [b, h, t, dh] = q.shape;
  const [, hkv, l] = k.shape;
  if (dh > MAX_HEAD_DIM) throw new ShapeError(`${op}: head dimension ${dh} (q ${fmtShape(q.shape)}) exceeds the webgpu kernel's ${MAX_HEAD_DIM}`);
  if (b * h > MAX_WORKGROUPS_PER_DIM) throw new ShapeError(`${op}: B * H = ${b * h} (q ${fmtShape(q.shape)}) exceeds ${MAX_WORKGROUPS_PER_DIM} workgroups`);
  return { b, h, hkv, t, l, dh, bias: bias ?? null };
}

/** Uniforms shared by the three kernels. */
function attentionUniforms(s: AttentionShape, attrs: AttentionAttrs, tile: number): Uniforms {
  const bias = s.bias;
  return new Uniforms()
    .u32('B', s.b)
    .u32('H', s.h)
    .u32('HKV', s.hkv)
    .u32('G', s.h / s.hkv)
    .u32('T', s.t)
    .u32('L', s.l)
    .u32('offset', s.l - s.t)
    .f32('scale', attrs.scale)
    .u32('biasB', bias && bias.shape[0] > 1 ? 1 : 0)
    .u32('biasT', bias && bias.shape[2] > 1 ? 1 : 0)
    // Loop bounds from uniforms rather than constants (equal to DH and TILE): with
    // constant trip counts LLVM-based drivers (lavapipe) unrolled the nested loops fully
    // and took up to a minute to compile one kernel.
    .u32('dh', s.dh)
    .u32('tile', tile);
}

/**
 * WGSL of the masking rule: `included(i, j)` says whether key `j` takes part for query
 * `i` at all, and `mask_add(b, i, j)` is the additive mask of a key that does.
 */
function maskWgsl(causal: boolean, hasBias: boolean): string {
  const masked = 'bitcast<f32>(0xff7fffffu)';
  const skipFuture = causal && !hasBias;
  const biasRead = hasBias ? 'bias[((b * u.biasB) * select(1u, u.T, u.biasT == 1u) + i * u.biasT) * u.L + j]' : '0.0';
  const causalMin = causal && hasBias ? `select(mb, min(mb, ${masked}), j > u.offset + i)` : 'mb';
  return `fn masked_score() -> f32 { return ${masked}; }
fn included(i: u32, j: u32) -> bool { return ${skipFuture ? 'j <= u.offset + i' : 'true'}; }
fn mask_add(b: u32, i: u32, j: u32) -> f32 {
  let mb = ${biasRead};
  return ${causalMin};
}`;
}

/*
 * WGSL shared by the two query-row kernels (the forward and the query gradient): each
 * invocation owns one query row `i` of head `bh` and the workgroup walks the keys in
 * tiles of `TILE` rows of K and V staged in workgroup memory.
 */

/** Constants, the staged K/V tiles and the mask functions of a query-row kernel. */
function queryRowDeclarations(dh: number, rows: number, tile: number, causal: boolean, hasBias: boolean): string {
  return `const DH: u32 = ${dh}u;
const ROWS: u32 = ${rows}u;
const TILE: u32 = ${tile}u;
var<workgroup> kt: array<f32, ${tile * dh}>;
var<workgroup> vt: array<f32, ${tile * dh}>;
${maskWgsl(causal, hasBias)}`;
}

/** This invocation's query row `i` (valid when `i < T`), its batch `b` and K/V head base. */
const QUERY_ROW = `  let bh = wid.y;
  let b = bh / u.H;
  let kvBase = (b * u.HKV + (bh % u.H) / u.G) * u.L;
  let i = wid.x * ROWS + lid.x;
  let valid = i < u.T;`;

/**
 * The keys any row of this workgroup sees: under a causal mask alone, none past the
 * workgroup's last row. Uniform across the workgroup (the tile loop has barriers).
 */
function keyEnd(causal: boolean, hasBias: boolean): string {
  return `  let keyEnd = ${causal && !hasBias ? 'min(u.L, u.offset + min(u.T, wid.x * ROWS + ROWS))' : 'u.L'};`;
}

/** Stages keys `[k0, k0 + TILE)` of K and V (zeros past `L`) in `kt` / `vt`. */
const KEY_TILE_LOAD = `    workgroupBarrier();
    for (var e = lid.x; e < TILE * DH; e += ROWS) {
      let j = k0 + e / DH;
      var kv = 0.0;
      var vv = 0.0;
      if (j < u.L) {
        kv = k[(kvBase + j) * DH + e % DH];
        vv = v[(kvBase + j) * DH + e % DH];
      }
      kt[e] = kv;
      vt[e] = vv;
    }
    workgroupBarrier();`;

function forwardKernel(inputs: readonly Tensor[], attrs: AttentionAttrs, ctx: WebGpuKernelContext): Tensor {
  const [q, k, , biasIn] = inputs;
  const s = shapeOf('FusedAttention', q, k, biasIn);
  const hasBias = s.bias !== null;
  const out = ctx.output([s.b, s.h, s.t, s.dh + 2], 'f32', 'FusedAttention');
  if (s.t === 0) return out;
  const tile = tileRows(ctx, 'FusedAttention', 2 * s.dh);
  const rows = ROWS_PER_WORKGROUP;
  const names: [string, string][] = [['q', wgslType(q.dtype)], ['k', wgslType(q.dtype)], ['v', wgslType(q.dtype)]];
  if (hasBias) names.push(['bias', wgslType(q.dtype)]);
  const u = attentionUniforms(s, attrs, tile);
  const key = `attention/fwd/${s.dh}/${tile}/${attrs.causal}/${hasBias}`;
  const prog = program(key, names.length, 1, () => `${storageBindings(names, [['out', 'f32']])}
${u.declaration(names.length + 1)}
${queryRowDeclarations(s.dh, rows, tile, attrs.causal, hasBias)}

@compute @workgroup_size(${rows})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
${QUERY_ROW}
  let qBase = (bh * u.T + select(0u, i, valid)) * DH;
  var qr: array<f32, ${s.dh}>;
  for (var d = 0u; d < u.dh; d++) { qr[d] = q[qBase + d]; }
  var acc: array<f32, ${s.dh}>;
  var sc: array<f32, ${tile}>;
  var m = masked_score();
  var l = 0.0;
${keyEnd(attrs.causal, hasBias)}
  for (var k0 = 0u; k0 < keyEnd; k0 += TILE) {
${KEY_TILE_LOAD}
    if (valid) {
      var mt = masked_score();
      var seen = false;
      for (var c = 0u; c < u.tile; c++) {
        let j = k0 + c;
        if (j < u.L && included(i, j)) {
          var qk = 0.0;
          for (var d = 0u; d < u.dh; d++) { qk += qr[d] * kt[c * DH + d]; }
          let sv = qk * u.scale + mask_add(b, i, j);
          sc[c] = sv;
          mt = max(mt, sv);
          seen = true;
        }
      }
      if (seen) {
        // Online softmax: rescale what was summed under the old max.
        let mn = max(m, mt);
        let corr = exp(m - mn);
        l = l * corr;
        for (var d = 0u; d < u.dh; d++) { acc[d] = acc[d] * corr; }
        for (var c = 0u; c < u.tile; c++) {
          let j = k0 + c;
          if (j < u.L && included(i, j)) {
            let p = exp(sc[c] - mn);
            l += p;
            for (var d = 0u; d < u.dh; d++) { acc[d] += p * vt[c * DH + d]; }
          }
        }
        m = mn;
      }
    }
  }
  if (valid) {
    let o = (bh * u.T + i) * (DH + 2u);
    for (var d = 0u; d < u.dh; d++) { out[o + d] = acc[d] / l; }
    out[o + DH] = m;
    out[o + DH + 1u] = l;
  }
}`);
  ctx.dispatch(prog, inputs, [out], u, [Math.ceil(s.t / rows), s.b * s.h, 1]);
  return out;
}

/** Bindings of the two backward kernels: `[dy, q, k, v, out, rowDot, bias?]`. */
function gradBindings(inputs: readonly Tensor[]): [string, string][] {
  const [dy, q, k, v, out, rowDot, bias] = inputs;
  const names: [string, string][] = [
    ['dy', wgslType(dy.dtype)],
    ['q', wgslType(q.dtype)],
    ['k', wgslType(k.dtype)],
    ['v', wgslType(v.dtype)],
    ['stats', wgslType(out.dtype)],
    ['rowDot', wgslType(rowDot.dtype)],
  ];
  if (bias) names.push(['bias', wgslType(bias.dtype)]);
  return names;
}

function gradQKernel(inputs: readonly Tensor[], attrs: AttentionAttrs, ctx: WebGpuKernelContext): Tensor {
  const [, q, k, , , , biasIn] = inputs;
  const s = shapeOf('FusedAttentionGradQ', q, k, biasIn);
  const hasBias = s.bias !== null;
  const dq = ctx.output(q.shape, 'f32', 'FusedAttentionGradQ');
  if (s.t === 0) return dq;
  const tile = tileRows(ctx, 'FusedAttentionGradQ', 2 * s.dh);
  const rows = ROWS_PER_WORKGROUP;
  const names = gradBindings(inputs);
  const u = attentionUniforms(s, attrs, tile);
  const key = `attention/dq/${s.dh}/${tile}/${attrs.causal}/${hasBias}`;
  const prog = program(key, names.length, 1, () => `${storageBindings(names, [['dq', 'f32']])}
${u.declaration(names.length + 1)}
${queryRowDeclarations(s.dh, rows, tile, attrs.causal, hasBias)}

@compute @workgroup_size(${rows})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
${QUERY_ROW}
  let row = bh * u.T + select(0u, i, valid);
  var qr: array<f32, ${s.dh}>;
  var dor: array<f32, ${s.dh}>;
  var acc: array<f32, ${s.dh}>;
  for (var d = 0u; d < u.dh; d++) {
    qr[d] = q[row * DH + d];
    dor[d] = dy[row * (DH + 2u) + d];
  }
  let m = stats[row * (DH + 2u) + DH];
  let l = stats[row * (DH + 2u) + DH + 1u];
  let rd = rowDot[row];
${keyEnd(attrs.causal, hasBias)}
  for (var k0 = 0u; k0 < keyEnd; k0 += TILE) {
${KEY_TILE_LOAD}
    if (valid) {
      for (var c = 0u; c < u.tile; c++) {
        let j = k0 + c;
        if (j < u.L && included(i, j)) {
          var qk = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < u.dh; d++) {
            qk += qr[d] * kt[c * DH + d];
            dp += dor[d] * vt[c * DH + d];
          }
          let p = exp(qk * u.scale + mask_add(b, i, j) - m) / l;
          let ds = p * (dp - rd);
          for (var d = 0u; d < u.dh; d++) { acc[d] += ds * kt[c * DH + d]; }
        }
      }
    }
  }
  if (valid) {
    for (var d = 0u; d < u.dh; d++) { dq[row * DH + d] = acc[d] * u.scale; }
  }
}`);
  ctx.dispatch(prog, inputs, [dq], u, [Math.ceil(s.t / rows), s.b * s.h, 1]);
  return dq;
}

function gradKVKernel(inputs: readonly Tensor[], attrs: AttentionAttrs, ctx: WebGpuKernelContext): Tensor {
  const [, q, k, , , , biasIn] = inputs;
  const s = shapeOf('FusedAttentionGradKV', q, k, biasIn);
  if (s.b * s.hkv > MAX_WORKGROUPS_PER_DIM) throw new ShapeError(`FusedAttentionGradKV: B * H_kv = ${s.b * s.hkv} exceeds ${MAX_WORKGROUPS_PER_DIM} workgroups`);
  const hasBias = s.bias !== null;
  const dkv = ctx.output([2, ...k.shape], 'f32', 'FusedAttentionGradKV');
  const kvSize = s.b * s.hkv * s.l * s.dh;
  // Keys no query sees (T = 0) get zero gradients: the kernel then loops over nothing.
  const tile = tileRows(ctx, 'FusedAttentionGradKV', 2 * s.dh + 3);
  const rows = ROWS_PER_WORKGROUP;
  const names = gradBindings(inputs);
  const u = attentionUniforms(s, attrs, tile).u32('kvSize', kvSize);
  const key = `attention/dkv/${s.dh}/${tile}/${attrs.causal}/${hasBias}`;
  const prog = program(key, names.length, 1, () => `${storageBindings(names, [['dkv', 'f32']])}
${u.declaration(names.length + 1)}
const DH: u32 = ${s.dh}u;
const ROWS: u32 = ${rows}u;
const TILE: u32 = ${tile}u;
var<workgroup> qt: array<f32, ${tile * s.dh}>;
var<workgroup> gt: array<f32, ${tile * s.dh}>;
var<workgroup> mt: array<f32, ${tile}>;
var<workgroup> lt: array<f32, ${tile}>;
var<workgroup> rt: array<f32, ${tile}>;
${maskWgsl(attrs.causal, hasBias)}

@compute @workgroup_size(${rows})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let bhk = wid.y;
  let b = bhk / u.HKV;
  let hk = bhk % u.HKV;
  let j = wid.x * ROWS + lid.x;
  let valid = j < u.L;
  let kRow = bhk * u.L + select(0u, j, valid);
  var kr: array<f32, ${s.dh}>;
  var vr: array<f32, ${s.dh}>;
  var dk: array<f32, ${s.dh}>;
  var dv: array<f32, ${s.dh}>;
  for (var d = 0u; d < u.dh; d++) {
    kr[d] = k[kRow * DH + d];
    vr[d] = v[kRow * DH + d];
  }
  // Queries before the first one that sees this workgroup's first key contribute nothing
  // under the causal mask alone; uniform across the workgroup.
  let firstKey = wid.x * ROWS;
  let qStart = ${attrs.causal && !hasBias ? 'select(0u, ((firstKey - u.offset) / TILE) * TILE, firstKey > u.offset)' : '0u'};
  for (var g = 0u; g < u.G; g++) {
    let bh = b * u.H + hk * u.G + g;
    for (var i0 = qStart; i0 < u.T; i0 += TILE) {
      workgroupBarrier();
      for (var e = lid.x; e < TILE * DH; e += ROWS) {
        let i = i0 + e / DH;
        var qv = 0.0;
        var gv = 0.0;
        if (i < u.T) {
          qv = q[(bh * u.T + i) * DH + e % DH];
          gv = dy[(bh * u.T + i) * (DH + 2u) + e % DH];
        }
        qt[e] = qv;
        gt[e] = gv;
      }
      for (var e = lid.x; e < TILE; e += ROWS) {
        let i = i0 + e;
        var mv = 0.0;
        var lv = 1.0;
        var rv = 0.0;
        if (i < u.T) {
          let r = bh * u.T + i;
          mv = stats[r * (DH + 2u) + DH];
          lv = stats[r * (DH + 2u) + DH + 1u];
          rv = rowDot[r];
        }
        mt[e] = mv;
        lt[e] = lv;
        rt[e] = rv;
      }
      workgroupBarrier();
      if (valid) {
        for (var c = 0u; c < u.tile; c++) {
          let i = i0 + c;
          if (i < u.T && included(i, j)) {
            var qk = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < u.dh; d++) {
              qk += qt[c * DH + d] * kr[d];
              dp += gt[c * DH + d] * vr[d];
            }
            let p = exp(qk * u.scale + mask_add(b, i, j) - mt[c]) / lt[c];
            let ds = p * (dp - rt[c]);
            for (var d = 0u; d < u.dh; d++) {
              dv[d] += p * gt[c * DH + d];
              dk[d] += ds * qt[c * DH + d];
            }
          }
        }
      }
    }
  }
  if (valid) {
    for (var d = 0u; d < u.dh; d++) {
      dkv[kRow * DH + d] = dk[d] * u.scale;
      dkv[u.kvSize + kRow * DH + d] = dv[d];
    }
  }
}`);
  ctx.dispatch(prog, inputs, [dkv], u, [Math.ceil(s.l / rows), s.b * s.hkv, 1]);
  return dkv;
}

type AttentionKernel = (inputs: readonly Tensor[], attrs: AttentionAttrs, ctx: WebGpuKernelContext) => Tensor;

/**
 * `kernel` (f32 WGSL) for inputs of any float dtype: f16 inputs are widened to f32
 * copies first, and the output is rounded once to f16 when `halfOut(inputs)` says so.
 */
function widening(op: string, kernel: AttentionKernel, halfOut: (inputs: readonly Tensor[]) => boolean): AttentionKernel {
  return (inputs, attrs, ctx) => {
    if (!inputs.some((t) => t.dtype === 'f16')) return kernel(inputs, attrs, ctx);
    checkF16(ctx, op, inputs.map((t) => t.dtype));
    const wide = inputs.map((t) => (t.dtype === 'f16' ? ctx.run('Cast', [t], { dtype: 'f32' }) : t));
    try {
      const out = kernel(wide, attrs, ctx);
      if (!halfOut(inputs)) return out;
      const rounded = ctx.run('Cast', [out], { dtype: 'f16' });
      out.dispose();
      return rounded;
    } finally {
      wide.forEach((t, i) => {
        if (t !== inputs[i]) t.dispose();
      });
    }
  };
}

/** Registers the webgpu kernels of `FusedAttention` and its two gradient ops. */
export function registerWebGpuAttentionKernels(): void {
  // The forward's output (attention output and statistics) is f32 for every input dtype.
  registerKernel('FusedAttention', 'webgpu', widening('FusedAttention', forwardKernel, () => false));
  registerKernel('FusedAttentionGradQ', 'webgpu', widening('FusedAttentionGradQ', gradQKernel, (xs) => xs[1].dtype === 'f16'));
  registerKernel('FusedAttentionGradKV', 'webgpu', widening('FusedAttentionGradKV', gradKVKernel, (xs) => xs[2].dtype === 'f16'));
}
