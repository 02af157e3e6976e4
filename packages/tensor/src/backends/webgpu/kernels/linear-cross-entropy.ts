/**
 * webgpu kernels of the fused linear + cross-entropy. The vocabulary is walked in chunks
 * of weight rows (`linear-cross-entropy/chunks.ts`); each chunk's logits `[N, rows]` are
 * one tiled matmul (composed with `ctx.run`) and live only while that chunk is processed.
 *
 * - `LinearCrossEntropyStats`: per chunk, one workgroup per row reduces the chunk's max
 *   and sum of exponentials and folds them into the running logsumexp (online
 *   logsumexp: `lse = m + log(exp(lse - m) + exp(chunk - m))`), and picks the label's
 *   logit when it falls in the chunk. The first chunk checks the labels.
 * - `LinearCrossEntropy`: `loss = lse - target` per row (0 at ignored rows).
 * - `LinearCrossEntropyBackward` (in-place op, several outputs): per chunk, the logits
 *   again, overwritten in place by `dy (exp(x - lse) - onehot)`, then
 *   `dHidden += g @ W_c` (accumulated in f32), `dW[c] = g^T @ hidden`, `dBias[c] = sum(g)`.
 *
 * Logits carry the inputs' dtype: f16 inputs give f16 logits (and a bias added in f16),
 * as the unfused matmul and add do; statistics and losses are f32.
 *
 * The weight may be split in row chunks (a tied head larger than one storage binding):
 * every kernel here is registered as chunk-aware, the weight is read and its gradient
 * (allocated in the same row chunks) written only through `weightRows`/`writeRows`, and
 * the hidden states reach only the matmul, which takes chunked operands.
 */
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { registerInPlaceKernel, registerKernel } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import type { LinearCrossEntropyGrads } from '../../../ops/linear-cross-entropy-grad.js';
import { enableF16 } from '../f16.js';
import { indexCheckWgsl } from '../index-checks.js';
import { program } from '../program.js';
import { WGSL_SPECIAL } from '../wgsl-math.js';
import { Uniforms, elementMain, grid, rowGrid, storageBindings, wgslType } from '../wgsl.js';
import { vocabChunkRows } from './linear-cross-entropy/chunks.js';
import { weightRows, writeRows } from './linear-cross-entropy/weight-rows.js';
import { WGSL_MAX_NAN } from './wgsl-max-nan.js';

/** Threads per row in the statistics kernel. */
const ROW_WG = 64;
/** Threads per workgroup of the elementwise kernels. */
const WG = 256;

/**
 * WGSL `logit(i, j)`: element `i` of the chunk's logits (column `j`) as f32, plus the
 * bias of vocabulary row `u.start + j` added in the logits' dtype (f16 rounds the sum,
 * as `add(logits, bias)` does).
 */
function logitFn(buffer: string, half: boolean, bias: boolean): string {
  const T = half ? 'f16' : 'f32';
  const sum = bias ? `${buffer}[i] + bias[u.start + j]` : `${buffer}[i]`;
  return `fn logit(i: u32, j: u32) -> f32 { return f32(${T}(${sum})); }`;
}

/** The chunk's `[N, rows]` logits of `hidden [N, D]` against weight rows `[start, end)`. */
function chunkLogits(ctx: WebGpuKernelContext, hidden: Tensor, weight: Tensor, start: number, end: number): Tensor {
  const wc = weightRows(ctx, weight, start, end);
  try {
    return ctx.run('MatMul', [hidden, wc], { transposeA: false, transposeB: true });
  } finally {
    wc.dispose();
  }
}

/** Folds one chunk of logits into the running statistics `[2, N]` (see the file doc). */
function foldChunk(ctx: WebGpuKernelContext, logits: Tensor, labels: Tensor, bias: Tensor | undefined, stats: Tensor, start: number, v: number, ignoreIndex: number): void {
  const [n, w] = logits.shape;
  const first = start === 0;
  const half = logits.dtype === 'f16';
  const T = wgslType(logits.dtype);
  const u = new Uniforms().u32('rows', n).u32('w', w).u32('start', start).u32('v', v).i32('ignoreIndex', ignoreIndex);
  if (first) u.indexSlot(ctx.indexCheck({ op: 'linearCrossEntropy', shape: [n, v], limit: v, what: 'classes', detail: `; ignoreIndex ${ignoreIndex}` }));
  const inputs: [string, string][] = [['logits', T], ['labels', 'i32'], ...(bias ? [['bias', T] as [string, string]] : [])];
  const prog = program(
    `linear-ce/fold/${T}/${bias ? 'bias' : 'nobias'}/${first ? 'first' : 'next'}`,
    inputs.length,
    1,
    () => `${enableF16(ctx, 'linearCrossEntropy', [logits.dtype])}${WGSL_SPECIAL}
${storageBindings(inputs, [['stats', 'f32']])}
${u.declaration(inputs.length + 1)}
${first ? indexCheckWgsl(inputs.length + 2) : ''}
${WGSL_MAX_NAN}
${logitFn('logits', half, bias !== undefined)}
var<workgroup> red: array<f32, ${ROW_WG}>;
fn reduce(v: f32, tid: u32, isMax: bool) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { red[tid] = select(red[tid] + red[tid + s], maxNan(red[tid], red[tid + s]), isMax); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; }
  let tid = lid.x;
  let o = row * u.w;
  var mx = neg_inf_();
  for (var j = tid; j < u.w; j += ${ROW_WG}u) { mx = maxNan(mx, logit(o + j, j)); }
  mx = reduce(mx, tid, true);
  var se = 0.0;
  for (var j = tid; j < u.w; j += ${ROW_WG}u) { se = se + exp(logit(o + j, j) - mx); }
  se = reduce(se, tid, false);
  if (tid != 0u) { return; }
  let chunk = mx + log(se);
  ${
    first
      ? 'stats[row] = chunk;'
      : `let prev = stats[row];
  let m = maxNan(prev, chunk);
  stats[row] = m + log(exp(prev - m) + exp(chunk - m));`
  }
  let label = labels[row];
  ${
    first
      ? `if (label == u.ignoreIndex) {
    stats[u.rows + row] = 0.0;
  } else if (label < 0 || u32(label) >= u.v) {
    report_bad_index(u.errSlot, row, label);
    stats[u.rows + row] = nan_();
  }`
      : ''
  }
  if (label != u.ignoreIndex && label >= i32(u.start) && label < i32(u.start + u.w)) {
    let j = u32(label) - u.start;
    stats[u.rows + row] = logit(o + j, j);
  }
}`,
    { indexChecks: first },
  );
  ctx.dispatch(prog, bias ? [logits, labels, bias] : [logits, labels], [stats], u, rowGrid(n));
}

/** Overwrites a chunk's logits with `dy (exp(x - lse) - onehot)` per row, 0 at ignored rows. */
function chunkGradInPlace(ctx: WebGpuKernelContext, g: Tensor, labels: Tensor, stats: Tensor, dy: Tensor, bias: Tensor | null, start: number, ignoreIndex: number): void {
  const [n, w] = g.shape;
  const half = g.dtype === 'f16';
  const T = wgslType(g.dtype);
  const u = new Uniforms().u32('size', n * w).u32('w', w).u32('start', start).i32('ignoreIndex', ignoreIndex);
  const inputs: [string, string][] = [['labels', 'i32'], ['stats', 'f32'], ['dy', 'f32'], ...(bias ? [['bias', T] as [string, string]] : [])];
  const prog = program(`linear-ce/grad/${T}/${bias ? 'bias' : 'nobias'}`, inputs.length, 1, () => `${enableF16(ctx, 'linearCrossEntropy', [g.dtype])}
${storageBindings(inputs, [['g', T]])}
${u.declaration(inputs.length + 1)}
${logitFn('g', half, bias !== null)}
${elementMain(WG, 'u.size')}
  let row = i / u.w;
  let j = i % u.w;
  let label = labels[row];
  let p = exp(logit(i, j) - stats[row]);
  let onehot = select(0.0, 1.0, label == i32(u.start + j));
  g[i] = ${T}(select(dy[row] * (p - onehot), 0.0, label == u.ignoreIndex));
}`);
  ctx.dispatch(prog, bias ? [labels, stats, dy, bias] : [labels, stats, dy], [g], u, grid(n * w, WG));
}

/** Registers the webgpu kernels of the fused linear + cross-entropy. */
export function registerWebGpuLinearCrossEntropyKernels(): void {
  registerKernel('LinearCrossEntropyStats', 'webgpu', (inputs, { ignoreIndex, chunkSize }, ctx) => {
    const [hidden, weight, labels, bias] = inputs;
    const [n, d] = hidden.shape;
    const v = weight.shape[0];
    const stats = ctx.output([2, n], 'f32', 'linearCrossEntropy');
    if (n === 0) return stats;
    const bytes = hidden.dtype === 'f16' ? 2 : 4;
    const rows = vocabChunkRows(n, v, d, bytes, ctx.maxBindingBytes, chunkSize);
    try {
      for (let start = 0; start < v; start += rows) {
        const logits = chunkLogits(ctx, hidden, weight, start, Math.min(v, start + rows));
        try {
          foldChunk(ctx, logits, labels, bias, stats, start, v, ignoreIndex);
        } finally {
          logits.dispose();
        }
      }
    } catch (e) {
      stats.dispose();
      throw e;
    }
    return stats;
  }, { chunked: true });

  // Reads only the labels and the statistics (the weight is an input for the gradient).
  registerKernel('LinearCrossEntropy', 'webgpu', (inputs, { ignoreIndex }, ctx) => {
    const [, , labels, stats] = inputs;
    const n = labels.shape[0];
    const out = ctx.output([n], 'f32', 'linearCrossEntropy');
    if (n === 0) return out;
    const u = new Uniforms().u32('rows', n).i32('ignoreIndex', ignoreIndex);
    const prog = program('linear-ce/loss', 2, 1, () => `${storageBindings([['labels', 'i32'], ['stats', 'f32']], [['out', 'f32']])}
${u.declaration(3)}
${elementMain(WG, 'u.rows')}
  out[i] = select(stats[i] - stats[u.rows + i], 0.0, labels[i] == u.ignoreIndex);
}`);
    ctx.dispatch(prog, [labels, stats], [out], u, grid(n, WG));
    return out;
  }, { chunked: true });

  registerInPlaceKernel('LinearCrossEntropyBackward', 'webgpu', (a, ctx): LinearCrossEntropyGrads => {
    const { hidden, weight, labels, stats, dy, bias, needs, ignoreIndex } = a;
    const [n, d] = hidden.shape;
    const v = weight.shape[0];
    const made: Tensor[] = [];
    const own = (t: Tensor) => (made.push(t), t);
    const drop = (t: Tensor) => {
      made.splice(made.indexOf(t), 1);
      t.dispose();
    };
    try {
      // In row chunks where the weight is (a gradient as large as it exceeds one binding too).
      const dWeight = needs.weight ? own(ctx.chunkedOutput([v, d], weight.dtype, 'linearCrossEntropy')) : null;
      const dBias = needs.bias && bias ? own(ctx.output([v], bias.dtype, 'linearCrossEntropy')) : null;
      let dHidden: Tensor | null = null;
      if (n === 0) {
        // No rows: every gradient is zeros (the chunk loop would multiply empty matrices).
        const zeros = (shape: number[], dtype: Tensor['dtype']) => own(ctx.run('Fill', [], { shape, value: 0, dtype }));
        return {
          hidden: needs.hidden ? zeros([0, d], hidden.dtype) : null,
          weight: dWeight ? (drop(dWeight), zeros([v, d], weight.dtype)) : null,
          bias: dBias && bias ? (drop(dBias), zeros([v], bias.dtype)) : null,
        };
      }
      const half = hidden.dtype === 'f16';
      const rows = vocabChunkRows(n, v, d, half ? 2 : 4, ctx.maxBindingBytes, a.chunkSize);
      for (let start = 0; start < v; start += rows) {
        const end = Math.min(v, start + rows);
        const wc = own(weightRows(ctx, weight, start, end));
        const g = own(ctx.run('MatMul', [hidden, wc], { transposeA: false, transposeB: true }));
        chunkGradInPlace(ctx, g, labels, stats, dy, bias, start, ignoreIndex);
        if (needs.hidden) {
          let part = own(ctx.run('MatMul', [g, wc], { transposeA: false, transposeB: false }));
          // f16: the chunks' partial products are summed in f32, as one matmul over V would.
          if (half) {
            const wide = own(ctx.run('Cast', [part], { dtype: 'f32' }));
            drop(part);
            part = wide;
          }
          if (dHidden) {
            const total = own(ctx.run('Add', [dHidden, part], {}));
            drop(dHidden);
            drop(part);
            dHidden = total;
          } else dHidden = part;
        }
        if (dWeight) {
          const dwc = own(ctx.run('MatMul', [g, hidden], { transposeA: true, transposeB: false }));
          writeRows(ctx, dwc, dWeight, start);
          drop(dwc);
        }
        if (dBias) {
          const dbc = own(ctx.run('Sum', [g], { axes: [0], keepDims: false }));
          writeRows(ctx, dbc, dBias, start);
          drop(dbc);
        }
        drop(g);
        drop(wc);
      }
      if (dHidden && half) {
        const narrow = own(ctx.run('Cast', [dHidden], { dtype: 'f16' }));
        drop(dHidden);
        dHidden = narrow;
      }
      return { hidden: dHidden, weight: dWeight, bias: dBias };
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
  });
}
