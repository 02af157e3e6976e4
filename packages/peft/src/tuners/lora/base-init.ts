/**
 * LoRA initialisations that rewrite the base weight, as PEFT 0.21's `LoraLayer.pissa_init` and
 * `loftq_init` (`peft/tuners/lora/layer.py`, `peft/utils/loftq_utils.py`):
 * - PiSSA (Meng et al. 2024, arXiv:2404.02948): `W = U S Vh`; `A = sqrt(S_r / s) Vh_r`,
 *   `B = U_r sqrt(S_r / s)` and the base keeps `W - s B A` (s the scaling); `'pissa_niter_K'`
 *   takes the top r triplets from a randomized SVD with K power iterations (Halko et al. 2011,
 *   as `torch.svd_lowrank` with `q = r`).
 * - OLoRA (Büyükakyüz 2024, arXiv:2406.01775; PEFT's `olora_init`): `W = Q R` (reduced QR);
 *   `A = R[:r]`, `B = Q[:, :r]` and the base keeps `W - s B A`. PEFT factors the stored weight
 *   as it is, which for GPT-2's `Conv1D` (`[in, out]`) gives A and B of the wrong layout, so
 *   OLoRA is refused on `Conv1D` bases here.
 * - LoftQ (Li et al. 2023, arXiv:2310.08659): starting from `R = W`, repeat `loftqIter` times:
 *   `Q = quantize(R)`, `L R' = rank-r SVD of W - Q` (`L = U_r sqrt(S_r)`, `R' = sqrt(S_r) Vh_r`),
 *   `R = W - L R'`; then `A = R'`, `B = L` and the base holds `Q` (PEFT does not divide by s, so
 *   `W ~ Q + B A` needs `loraAlpha = r`). The default quantizer is bitsandbytes' NF4 with blocks of
 *   64 and no double quantization (the one PEFT 0.21 calls), restated here from its rules.
 * The SVDs run on the host in float64 (`linalg/svd.ts`): meant for the layer sizes this project
 * fine-tunes in a tab, not for 4096-wide layers.
 */
import { Conv1D, Linear } from '@webpeft/nn';
import { type Tensor, assign, noGrad, randn, tensor } from '@webpeft/tensor';
import { svd } from '../../linalg/svd.js';
import { qr } from '../../linalg/qr.js';
import type { PeftConfig } from '../../config.js';
import type { AnyTunerLayer } from '../tuner-model.js';
import { type ResolvedLoraConfig, isBaseRewritingInit } from './config.js';
import { LoraLinear, type LoraSettings } from './linear.js';

/** Quantize-dequantize of a base weight `[out, in]` (f32 values on the quantizer's grid), for LoftQ. */
export type LoftQQuantizer = (weight: Tensor, bits: number) => Tensor | Promise<Tensor>;

/** What {@link initLoraFromBase} needs of a `PeftModel` (structural). */
export interface BaseInitHost {
  readonly peftConfig: ReadonlyMap<string, PeftConfig>;
  readonly base_model: { tunerLayers(): [string, AnyTunerLayer][] };
}

/** Options of {@link initLoraFromBase}. */
export interface BaseInitOptions {
  /** Only this adapter (default: every adapter with a pending PiSSA / OLoRA / LoftQ init). */
  adapterName?: string;
  /** LoftQ's quantizer (default: NF4 for 4 bits; 8 bits needs one). */
  quantize?: LoftQQuantizer;
  /**
   * Rewrite the base only and keep A and B as they are: what loading a saved PiSSA / OLoRA / LoftQ
   * adapter does (PEFT re-runs the init on the original base, then loads the trained A and B).
   */
  keepAdapterWeights?: boolean;
}

/**
 * Runs the pending PiSSA / OLoRA / LoftQ initialisations of a model made with
 * `initLoraWeights: 'pissa' | 'pissa_niter_K' | 'olora' | 'loftq'`: sets A and B and rewrites each
 * wrapped layer's base weight. The base must be full precision (`Linear` or GPT-2 `Conv1D`), as
 * PEFT requires: quantize the model afterwards (LoftQ's base then sits on the quantizer's grid).
 * Returns the paths of the layers it initialised.
 * @example const peft = getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 8, initLoraWeights: 'pissa' }); await initLoraFromBase(peft);
 */
export async function initLoraFromBase(peft: BaseInitHost, options: BaseInitOptions = {}): Promise<string[]> {
  const done: string[] = [];
  const names = options.adapterName !== undefined ? [options.adapterName] : [...peft.peftConfig.keys()];
  if (options.adapterName !== undefined && !peft.peftConfig.has(options.adapterName)) throw new Error(`initLoraFromBase: adapter '${options.adapterName}' does not exist`);
  const todo: [string, LoraLinear, string, LoraSettings, ResolvedLoraConfig][] = [];
  for (const name of names) {
    const config = peft.peftConfig.get(name) as ResolvedLoraConfig;
    for (const [path, layer] of peft.base_model.tunerLayers()) {
      if (!(layer instanceof LoraLinear) || !layer.adapterNames().includes(name)) continue;
      const settings = layer.adapterSettings(name);
      if (!settings.pendingInit) continue;
      const base = layer.base;
      // Every layer is checked before any base is rewritten.
      if (!(base instanceof Linear || base instanceof Conv1D)) {
        throw new Error(`initLoraFromBase: '${settings.pendingInit}' at '${path}' needs a full-precision base (Linear or Conv1D), got ${base.constructor.name}; initialise before quantizing, as PEFT requires`);
      }
      if (settings.pendingInit === 'olora' && base instanceof Conv1D) {
        throw new Error(`initLoraFromBase: 'olora' at '${path}': PEFT 0.21's olora_init factors a Conv1D's stored [in, out] weight without the fan_in_fan_out transpose (A and B come out in the wrong layout); OLoRA is supported on Linear bases`);
      }
      const r = layer.weights(name).A.shape[0];
      if (r > Math.min(layer.outFeatures, layer.inFeatures)) throw new Error(`initLoraFromBase: rank ${r} exceeds min(${layer.outFeatures}, ${layer.inFeatures}) of '${path}'`);
      const bits = config.loftqConfig?.loftqBits ?? 4;
      if (settings.pendingInit === 'loftq' && bits !== 4 && !options.quantize) throw new Error(`initLoraFromBase: loftqConfig.loftqBits ${bits} needs options.quantize (the built-in quantizer is NF4, 4 bits)`);
      todo.push([path, layer, name, settings, config]);
    }
  }
  for (const [path, layer, name, settings, config] of todo) {
    await initLayer(path, layer, name, settings, config, options);
    done.push(path);
  }
  return done;
}

/**
 * Throws before a forward while a PiSSA / OLoRA / LoftQ init is pending (checked before any work, so a
 * refused forward allocates nothing). Costs one look at each adapter's config otherwise.
 */
export function checkNoPendingInit(peft: BaseInitHost): void {
  const pending = [...peft.peftConfig].filter(([, c]) => isBaseRewritingInit((c as ResolvedLoraConfig).initLoraWeights));
  if (pending.length === 0) return;
  for (const [name] of pending) {
    for (const [, layer] of peft.base_model.tunerLayers()) {
      if (!(layer instanceof LoraLinear) || !layer.adapterNames().includes(name)) continue;
      const init = layer.adapterSettings(name).pendingInit;
      if (init) throw new Error(`PeftModel: adapter '${name}' uses initLoraWeights '${init}', which rewrites the base weight: run \`await initLoraFromBase(peft)\` before the first forward`);
    }
  }
}

async function initLayer(path: string, layer: LoraLinear, name: string, settings: LoraSettings, config: ResolvedLoraConfig, options: BaseInitOptions): Promise<void> {
  const init = settings.pendingInit as string;
  const { A: targetA, B: targetB, scaling } = layer.weights(name);
  const r = targetA.shape[0];
  const [rows, cols] = [layer.outFeatures, layer.inFeatures];
  if (r > Math.min(rows, cols)) throw new Error(`initLoraFromBase: rank ${r} exceeds min(${rows}, ${cols}) of '${path}'`);
  const W = await readAndDispose(noGrad(() => layer.base.dequantizedWeight()));
  let A: Float64Array;
  let B: Float64Array;
  let residual: Float64Array;
  if (init === 'loftq') {
    const lq = config.loftqConfig;
    if (!lq) throw new Error(`initLoraFromBase: adapter '${name}' has initLoraWeights 'loftq' but no loftqConfig`);
    const quantize = options.quantize ?? ((lq.loftqBits ?? 4) === 4 ? nf4Roundtrip : undefined);
    if (!quantize) throw new Error(`initLoraFromBase: loftqConfig.loftqBits ${lq.loftqBits} needs options.quantize (the built-in quantizer is NF4, 4 bits)`);
    ({ A, B, residual } = await loftq(W, rows, cols, r, lq.loftqIter ?? 1, lq.loftqBits ?? 4, quantize, targetA.backend.name));
  } else if (init === 'olora') {
    const { Q, R, k } = qr(W, rows, cols);
    A = R.slice(0, r * cols);
    B = new Float64Array(rows * r);
    for (let i = 0; i < rows; i++) for (let c = 0; c < r; c++) B[i * r + c] = Q[i * k + c];
    residual = subtractScaled(W, B, A, rows, r, cols, scaling);
  } else {
    const gaussian = init === 'pissa' ? null : await readAndDispose(noGrad(() => randn([cols, r], { backend: targetA.backend.name })));
    const { U, S, Vh, k } = gaussian ? randomizedSvd(W, rows, cols, r, Number(init.slice('pissa_niter_'.length)), gaussian) : svd(W, rows, cols);
    A = new Float64Array(r * cols);
    B = new Float64Array(rows * r);
    for (let c = 0; c < r; c++) {
      const s = Math.sqrt(S[c] / scaling);
      for (let j = 0; j < cols; j++) A[c * cols + j] = s * Vh[c * cols + j];
      for (let i = 0; i < rows; i++) B[i * r + c] = U[i * k + c] * s;
    }
    residual = subtractScaled(W, B, A, rows, r, cols, scaling);
  }
  const backend = targetA.backend.name;
  const newBase = tensor(Float32Array.from(residual), [rows, cols], { backend });
  try {
    await layer.base.loadWeight(newBase);
  } finally {
    newBase.dispose();
  }
  if (options.keepAdapterWeights) {
    delete settings.pendingInit;
    return;
  }
  const [tA, tB] = [tensor(Float32Array.from(A), [r, cols], { backend }), tensor(Float32Array.from(B), [rows, r], { backend })];
  noGrad(() => {
    assign(targetA, tA);
    assign(targetB, tB);
  });
  tA.dispose();
  tB.dispose();
  delete settings.pendingInit;
}

/** PEFT's `loftq_init`: the dequantized base, A = R and B = L (float64 host arrays). */
async function loftq(W: Float64Array, rows: number, cols: number, r: number, iters: number, bits: number, quantize: LoftQQuantizer, backend: Tensor['backend']['name']) {
  let res: Float64Array = W;
  let deq: Float64Array = new Float64Array(0);
  let L: Float64Array = new Float64Array(0);
  let R: Float64Array = new Float64Array(0);
  for (let it = 0; it < iters; it++) {
    const t = tensor(Float32Array.from(res), [rows, cols], { backend });
    let q: Tensor;
    try {
      q = await quantize(t, bits);
    } finally {
      t.dispose();
    }
    if (q.shape.join(',') !== `${rows},${cols}`) {
      q.dispose();
      throw new Error(`initLoraFromBase: the LoftQ quantizer returned [${q.shape.join(', ')}] for a [${rows}, ${cols}] weight`);
    }
    deq = await readAndDispose(q);
    const err = W.map((w, i) => w - deq[i]);
    const { U, S, Vh, k } = svd(err, rows, cols);
    L = new Float64Array(rows * r);
    R = new Float64Array(r * cols);
    for (let c = 0; c < r; c++) {
      const s = Math.sqrt(S[c]);
      for (let i = 0; i < rows; i++) L[i * r + c] = U[i * k + c] * s;
      for (let j = 0; j < cols; j++) R[c * cols + j] = s * Vh[c * cols + j];
    }
    if (it + 1 === iters) break;
    res = Float64Array.from(W);
    for (let i = 0; i < rows; i++) for (let c = 0; c < r; c++) for (let j = 0; j < cols; j++) res[i * cols + j] -= L[i * r + c] * R[c * cols + j];
  }
  return { A: R, B: L, residual: deq };
}

/** NF4 code values (bitsandbytes), by code. */
const NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534,
  0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
].map(Math.fround);
/** bitsandbytes' `dQuantizeNF4` decision pivots (float32 literals): code = #pivots with s > pivot. */
const NF4_PIVOTS = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
  0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(Math.fround);

/**
 * bitsandbytes' NF4 quantize-dequantize (blocks of 64 over the flattened weight, absmax per
 * block, `s = x * (1 / absmax)` in float32, no double quantization), in float32 arithmetic.
 */
async function nf4Roundtrip(weight: Tensor, bits: number): Promise<Tensor> {
  if (bits !== 4) throw new Error(`initLoraFromBase: the built-in LoftQ quantizer is NF4 (4 bits), got ${bits} bits`);
  const x = await weight.data();
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += 64) {
    const end = Math.min(b + 64, x.length);
    let absmax = 0;
    for (let i = b; i < end; i++) absmax = Math.max(absmax, Math.abs(x[i]));
    if (!Number.isFinite(absmax)) throw new Error(`initLoraFromBase: LoftQ cannot quantize a non-finite weight (block at element ${b})`);
    const inv = Math.fround(1 / absmax);
    for (let i = b; i < end; i++) {
      const s = Math.fround(x[i] * inv);
      let code = 0;
      for (const p of NF4_PIVOTS) if (s > p) code++;
      out[i] = Math.fround(NF4[code] * absmax);
    }
  }
  return tensor(out, weight.shape, { backend: weight.backend.name });
}

/**
 * `torch.svd_lowrank(W, q = r, niter)` (Halko et al. 2011, algorithm 4.4 with orthonormalised
 * power iterations): the top-`r` triplets of `W [rows, cols]` from the Gaussian test matrix
 * `G [cols, r]` (drawn from the global RNG stream: seed it with `manualSeed`). Float64 on the host.
 */
function randomizedSvd(W: Float64Array, rows: number, cols: number, r: number, niter: number, G: Float64Array) {
  const mul = (a: Float64Array, b: Float64Array, m: number, k: number, n: number, ta = false) => {
    const o = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) {
      const av = ta ? a[p * m + i] : a[i * k + p];
      if (av !== 0) for (let j = 0; j < n; j++) o[i * n + j] += av * b[p * n + j];
    }
    return o;
  };
  let Q = orthonormalColumns(mul(W, G, rows, cols, r), rows, r);
  for (let i = 0; i < niter; i++) {
    const Z = orthonormalColumns(mul(W, Q, cols, rows, r, true), cols, r);
    Q = orthonormalColumns(mul(W, Z, rows, cols, r), rows, r);
  }
  const Bsmall = mul(Q, W, r, rows, cols, true);
  const { U: Ub, S, Vh, k } = svd(Bsmall, r, cols);
  const U = mul(Q, Ub, rows, r, k);
  return { U, S, Vh, k };
}

/** Modified Gram-Schmidt on the columns of `M [m, n]` (row-major), in place; returns M. */
function orthonormalColumns(M: Float64Array, m: number, n: number): Float64Array {
  for (let c = 0; c < n; c++) {
    for (let p = 0; p < c; p++) {
      let dot = 0;
      for (let i = 0; i < m; i++) dot += M[i * n + p] * M[i * n + c];
      for (let i = 0; i < m; i++) M[i * n + c] -= dot * M[i * n + p];
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += M[i * n + c] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < m; i++) M[i * n + c] /= norm;
  }
  return M;
}

/** `W - s B A` for `W [rows, cols]`, `B [rows, r]`, `A [r, cols]` (a new array). */
function subtractScaled(W: Float64Array, B: Float64Array, A: Float64Array, rows: number, r: number, cols: number, s: number): Float64Array {
  const out = Float64Array.from(W);
  for (let i = 0; i < rows; i++) for (let c = 0; c < r; c++) for (let j = 0; j < cols; j++) out[i * cols + j] -= s * B[i * r + c] * A[c * cols + j];
  return out;
}

async function readAndDispose(t: Tensor): Promise<Float64Array> {
  try {
    return Float64Array.from(await t.data());
  } finally {
    t.dispose();
  }
}
