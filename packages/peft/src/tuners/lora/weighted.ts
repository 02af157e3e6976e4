import { type Tensor, assign, concat, mul, noGrad, pad, tensor, tidy, transpose } from '@webpeft/tensor';
import { svd } from '../../linalg/svd.js';
import type { PeftConfig } from '../../config.js';
import type { AnyTunerLayer } from '../tuner-model.js';
import type { ResolvedLoraConfig } from './config.js';
import { LoraEmbedding } from './embedding.js';
import { LoraLinear } from './linear.js';
import { type MajoritySignMethod, type TaskMergeMethod, mergeTaskTensors } from './merge-utils.js';

/** What {@link addWeightedAdapter} needs of a `PeftModel` (structural, so this file does not import it). */
export interface WeightedAdapterHost {
  /** Resolved config per adapter. */
  readonly peftConfig: ReadonlyMap<string, PeftConfig>;
  /** Adds (injects) an adapter. */
  addAdapter(name: string, config: PeftConfig): void;
  /** Removes an adapter (used to undo a combination that failed part-way). */
  deleteAdapter(name: string): void;
  /** The tuner model holding the wrapped layers. */
  readonly base_model: {
    /** Every wrapped layer with its path. */
    tunerLayers(): [string, AnyTunerLayer][];
  };
}

/** How {@link addWeightedAdapter} combines adapters (PEFT 0.21's `combination_type`). */
export type CombinationType =
  | 'linear'
  | 'cat'
  | 'svd'
  | 'ties'
  | 'ties_svd'
  | 'dare_linear'
  | 'dare_linear_svd'
  | 'dare_ties'
  | 'dare_ties_svd'
  | 'magnitude_prune'
  | 'magnitude_prune_svd';

/** Every {@link CombinationType}. */
export const COMBINATION_TYPES: readonly CombinationType[] = [
  'linear',
  'cat',
  'svd',
  'ties',
  'ties_svd',
  'dare_linear',
  'dare_linear_svd',
  'dare_ties',
  'dare_ties_svd',
  'magnitude_prune',
  'magnitude_prune_svd',
];

/** Options of {@link addWeightedAdapter} (PEFT's keyword arguments, camel-cased). */
export interface WeightedAdapterOptions {
  /** Default `'svd'`, as PEFT. With a single adapter PEFT (and this) always uses `'linear'`. */
  combinationType?: CombinationType;
  /** Rank of the `*svd` results (default: the largest adapter rank). */
  svdRank?: number;
  /** Fraction of values kept by `ties*`, `dare*` and `magnitude_prune*`, in [0, 1] (required by them). */
  density?: number;
  /** TIES' sign election for `ties*` and `dare_ties*` (default `'total'`). */
  majoritySignMethod?: MajoritySignMethod;
  /**
   * PEFT's `svd_clamp` for the `*svd` types: with `q` in [0, 1], `hi` = the q-quantile
   * (linear interpolation, as `torch.quantile`) of every entry of `U_k S_k` and `Vh_k`, and
   * both are clamped to `[-hi, hi]`. Default none.
   */
  svdClamp?: number | null;
  /**
   * PEFT's `svd_full_matrices` (default true). The rank-k result uses only the first k
   * singular vectors, which full and thin SVDs share, so both values give the same adapter.
   */
  svdFullMatrices?: boolean;
  /**
   * PEFT's `svd_driver` (torch's cuSOLVER driver name). One SVD algorithm exists here,
   * one-sided Jacobi in float64 on the host: `null`/absent, `'gesvdj'` (cuSOLVER's Jacobi)
   * and `'gesvd'` (an exact SVD too: the same factors up to rounding) map to it;
   * `'gesvda'` (cuSOLVER's approximate SVD) is refused.
   */
  svdDriver?: 'gesvd' | 'gesvdj' | 'gesvda' | null;
}

/** `svd_driver` names that map to the one SVD here (exact SVDs). */
const SVD_DRIVERS = ['gesvd', 'gesvdj'];

/** Types that merge A and B separately (all ranks equal). */
const FACTOR_TYPES: readonly CombinationType[] = ['linear', 'ties', 'dare_linear', 'dare_ties', 'magnitude_prune'];
const DENSITY_TYPES: readonly CombinationType[] = COMBINATION_TYPES.filter((t) => /^(ties|dare|magnitude)/.test(t));

/**
 * PEFT 0.21's `add_weighted_adapter` for LoRA: a new adapter `name` from `adapters`
 * weighted by `weights` (any sign), with `loraAlpha = r` (PEFT's choice), on the union of targets.
 * - `linear`, `ties`, `dare_linear`, `dare_ties`, `magnitude_prune` (equal ranks): A and B
 *   are merged separately ({@link mergeTaskTensors}) with weights `sign(w_i s_i) sqrt(|w_i s_i|)`
 *   on A and `sqrt(|w_i s_i|)` on B (`s_i` the scaling), so a negative weight subtracts.
 * - `cat`: `A' = [w_1 s_1 A_1; w_2 s_2 A_2; ...]`, `B' = [B_1, B_2, ...]` (rank = sum of ranks).
 * - `svd` and the `*_svd` forms: the deltas `s_i B_i A_i` (`[out, in]`; `[dim, vocab]` for
 *   embeddings) are merged with `w_i` by task arithmetic / TIES / DARE / magnitude pruning
 *   and truncated to `svdRank` by a float64 SVD on the host ({@link svd}): `B' = U_k S_k`, `A' = Vh_k`.
 * As in PEFT, a single adapter is always combined `linear`, and `dare*` draw random masks
 * (here from the global RNG stream: `manualSeed` makes them reproducible). Every argument is
 * checked before anything is added, and a failure part-way removes the new adapter again.
 * DoRA adapters are rejected (their magnitudes do not combine).
 * @example await peft.addWeightedAdapter(['math', 'code'], [1, -0.5], 'mix', { combinationType: 'ties', density: 0.5 });
 */
export async function addWeightedAdapter(peft: WeightedAdapterHost, adapters: string[], weights: number[], name: string, options: WeightedAdapterOptions = {}): Promise<void> {
  const { type, newRank, targetModules, configs } = checkWeightedAdapter(peft, adapters, weights, name, options);
  // The combined weights are set below: no PiSSA / LoftQ init of the base (PEFT would rerun it).
  peft.addAdapter(name, { ...configs[0], r: newRank, loraAlpha: newRank, targetModules, rankPattern: {}, alphaPattern: {}, initLoraWeights: true, loftqConfig: null } as ResolvedLoraConfig);
  try {
    for (const [path, layer] of peft.base_model.tunerLayers()) {
      if (!(layer instanceof LoraLinear || layer instanceof LoraEmbedding) || !layer.adapterNames().includes(name)) continue;
      const present = adapters.map((a, i) => [a, weights[i]] as const).filter(([a]) => layer.adapterNames().includes(a));
      if (present.length === 0) throw new Error(`addWeightedAdapter: no matching LoRAs found at '${path}'`);
      for (const [a] of present) {
        const pending = layer instanceof LoraLinear ? layer.adapterSettings(a).pendingInit : undefined;
        if (pending) throw new Error(`addWeightedAdapter: adapter ${a} waits for its '${pending}' init at '${path}' (run initLoraFromBase first)`);
      }
      const target = layer.weights(name);
      if (type === 'cat') catCombine(layer, present, newRank, target.A, target.B);
      else if (type === 'svd' || type.endsWith('_svd')) await svdCombine(path, layer, present, newRank, target.A, target.B, type === 'svd' ? 'linear' : (type.slice(0, -4) as TaskMergeMethod), options);
      else await factorCombine(path, layer, present, target.A, target.B, type as TaskMergeMethod, options);
    }
  } catch (e) {
    peft.deleteAdapter(name);
    throw e;
  }
}

/** PEFT's `_check_add_weighted_adapter` plus checks PEFT leaves to a later crash (or skips silently). */
function checkWeightedAdapter(peft: WeightedAdapterHost, adapters: string[], weights: number[], name: string, o: WeightedAdapterOptions) {
  const fail = (msg: string): never => {
    throw new Error(`addWeightedAdapter: ${msg}`);
  };
  // PEFT returns silently when the name exists; that would hide a typo, so it is an error here.
  if (peft.peftConfig.has(name)) fail(`adapter '${name}' already exists`);
  if (adapters.length === 0 || adapters.length !== weights.length) fail(`need one weight per adapter (got ${adapters.length} adapters, ${weights.length} weights)`);
  for (const w of weights) if (!(typeof w === 'number' && Number.isFinite(w))) fail(`weights must be finite numbers, got ${String(w)}`);
  const requested = o.combinationType ?? 'svd';
  if (!COMBINATION_TYPES.includes(requested)) fail(`option 'combinationType' ${JSON.stringify(requested)} is not one of ${COMBINATION_TYPES.join(', ')}`);
  const configs = adapters.map((a) => {
    const c = peft.peftConfig.get(a);
    if (!c) return fail(`adapter ${a} does not exist`);
    if (c.peftType !== 'LORA') fail(`adapter ${a} is ${c.peftType}, only LORA adapters combine`);
    if ((c as ResolvedLoraConfig).useDora) fail(`adapter ${a} uses DoRA, which cannot be combined`);
    return c as ResolvedLoraConfig;
  });
  const saved = new Map<string, number>();
  for (const c of configs) for (const m of new Set(c.modulesToSave ?? [])) saved.set(m, (saved.get(m) ?? 0) + 1);
  const shared = [...saved].filter(([, n]) => n > 1).map(([m]) => m);
  if (shared.length > 0) fail(`adapters that save the same module whole (modulesToSave: ${shared.join(', ')}) cannot be combined`);
  // PEFT: a single adapter can only be combined linearly.
  const type: CombinationType = adapters.length === 1 ? 'linear' : requested;
  if (o.density !== undefined && !DENSITY_TYPES.includes(type)) fail(`option 'density' applies only to ${DENSITY_TYPES.join(', ')} (combinationType is '${type}')`);
  if (DENSITY_TYPES.includes(type)) {
    if (o.density === undefined) fail(`option 'density' is required for combinationType '${type}' (the fraction of values kept, in [0, 1])`);
    if (!(typeof o.density === 'number' && o.density >= 0 && o.density <= 1)) fail(`option 'density' must be in [0, 1], got ${String(o.density)}`);
    if (type.startsWith('dare') && o.density === 0) fail(`option 'density' must be > 0 for '${type}' (DARE rescales by 1 / density)`);
  }
  const m = o.majoritySignMethod;
  if (m !== undefined && m !== 'total' && m !== 'frequency') fail(`option 'majoritySignMethod' must be 'total' or 'frequency', got ${JSON.stringify(m)}`);
  if (o.svdRank !== undefined && !(Number.isSafeInteger(o.svdRank) && o.svdRank > 0)) fail(`option 'svdRank' must be a positive integer, got ${String(o.svdRank)}`);
  const svdType = type === 'svd' || type.endsWith('_svd');
  for (const key of ['svdClamp', 'svdFullMatrices', 'svdDriver'] as const) {
    if (o[key] != null && !svdType) fail(`option '${key}' applies only to the svd combination types (combinationType is '${type}')`);
  }
  if (o.svdClamp != null && !(typeof o.svdClamp === 'number' && o.svdClamp >= 0 && o.svdClamp <= 1)) fail(`option 'svdClamp' must be a quantile in [0, 1], got ${String(o.svdClamp)}`);
  if (o.svdFullMatrices !== undefined && typeof o.svdFullMatrices !== 'boolean') fail(`option 'svdFullMatrices' must be true or false, got ${String(o.svdFullMatrices)}`);
  if (o.svdDriver != null && !SVD_DRIVERS.includes(o.svdDriver)) {
    fail(
      `option 'svdDriver' ${JSON.stringify(o.svdDriver)} is not available: the one SVD here is one-sided Jacobi in float64 on the host, which 'gesvdj' and 'gesvd' (exact SVDs) map to; cuSOLVER's approximate 'gesvda' has no counterpart (leave svdDriver unset)`,
    );
  }
  // PEFT sizes the new adapter by the largest rank an adapter may have (its rank pattern included).
  const ranks = configs.map((c) => Math.max(c.r, ...Object.values(c.rankPattern)));
  let newRank: number;
  if (FACTOR_TYPES.includes(type)) {
    if (new Set(ranks).size > 1) fail(`all adapters must have the same r for '${type}' (got ${ranks.join(', ')})`);
    newRank = ranks[0];
  } else if (type === 'cat') newRank = ranks.reduce((a, b) => a + b, 0);
  else newRank = o.svdRank ?? Math.max(...ranks);
  const targets = configs.map((c) => c.targetModules);
  const lists = targets.filter(Array.isArray).length;
  if (lists !== 0 && lists !== targets.length) fail('all adapters must give targetModules the same way: a mix of lists and regex strings cannot be combined (as in PEFT)');
  const targetModules = lists ? [...new Set<string>(targets.flat())] : targets.map((t) => `(${String(t)})`).join('|');
  return { type, newRank, targetModules, configs };
}

type Present = readonly (readonly [string, number])[];

function catCombine(layer: LoraLinear | LoraEmbedding, present: Present, rank: number, targetA: Tensor, targetB: Tensor): void {
  noGrad(() =>
    tidy(() => {
      const parts = present.map(([a, w]) => ({ ...layer.weights(a), w }));
      const catA = concat(parts.map((p) => mul(p.A, p.w * p.scaling)), 0);
      const catB = concat(parts.map((p) => p.B), 1);
      // Rows past the present adapters' ranks stay zero (a module some adapters skip).
      assign(targetA, pad(catA, [[0, rank - catA.shape[0]], [0, 0]]));
      assign(targetB, pad(catB, [[0, 0], [0, rank - catB.shape[1]]]));
    }),
  );
}

/** The equal-rank types: A and B merged separately, the sign of `w s` on A only (PEFT). */
async function factorCombine(path: string, layer: LoraLinear | LoraEmbedding, present: Present, targetA: Tensor, targetB: Tensor, method: TaskMergeMethod, o: WeightedAdapterOptions): Promise<void> {
  const parts = present.map(([a, w]) => ({ ...layer.weights(a), ws: w * layer.weights(a).scaling }));
  for (const p of parts) {
    if (p.A.shape.join(',') !== targetA.shape.join(',')) throw new Error(`addWeightedAdapter: '${method}' needs equal ranks, but '${path}' has lora_A [${p.A.shape.join(', ')}] (rank pattern) for a rank-${targetA.shape[0]} result`);
  }
  const opts = { density: o.density, majoritySignMethod: o.majoritySignMethod };
  const A = await mergeTaskTensors(method, parts.map((p) => p.A), parts.map((p) => Math.sign(p.ws || 1) * Math.sqrt(Math.abs(p.ws))), opts);
  const B = await mergeTaskTensors(method, parts.map((p) => p.B), parts.map((p) => Math.sqrt(Math.abs(p.ws))), opts).catch((e: unknown) => {
    A.dispose();
    throw e;
  });
  noGrad(() => {
    assign(targetA, A);
    assign(targetB, B);
  });
  A.dispose();
  B.dispose();
}

async function svdCombine(path: string, layer: LoraLinear | LoraEmbedding, present: Present, rank: number, targetA: Tensor, targetB: Tensor, method: TaskMergeMethod, o: WeightedAdapterOptions): Promise<void> {
  // Deltas in the [rows, cols] = B A orientation: [out, in] for linear, [dim, numEmbeddings] for embeddings.
  const [rows, cols] = [targetB.shape[0], targetA.shape[1]];
  if (rank > Math.min(rows, cols)) throw new Error(`addWeightedAdapter: option 'svdRank' ${rank} exceeds min(${rows}, ${cols}) at '${path}'`);
  const deltas = present.map(([a]) => {
    const d = layer.deltaWeight(a);
    if (!(layer instanceof LoraEmbedding)) return d;
    const t = noGrad(() => transpose(d));
    d.dispose();
    return t;
  });
  let merged: Tensor;
  try {
    merged = await mergeTaskTensors(method, deltas, present.map(([, w]) => w), { density: o.density, majoritySignMethod: o.majoritySignMethod });
  } finally {
    for (const d of deltas) d.dispose();
  }
  const total = await readAndDispose(merged);
  const { U, S, Vh, k } = svd(total, rows, cols);
  const B = new Float32Array(rows * rank);
  const A = new Float32Array(rank * cols);
  for (let i = 0; i < rows; i++) for (let c = 0; c < rank; c++) B[i * rank + c] = U[i * k + c] * S[c];
  for (let c = 0; c < rank; c++) for (let j = 0; j < cols; j++) A[c * cols + j] = Vh[c * cols + j];
  if (o.svdClamp != null) clampSymmetric(B, A, o.svdClamp);
  const backend = targetA.backend.name;
  noGrad(() =>
    tidy(() => {
      assign(targetA, tensor(A, [rank, cols], { backend }));
      assign(targetB, tensor(B, [rows, rank], { backend }));
    }),
  );
}

/**
 * PEFT's `svd_clamp`: `hi` = the q-quantile of every entry of `B` and `A` together (torch's
 * linear interpolation between order statistics, computed in float64), both clamped to
 * `[-hi, hi]` in place.
 */
export function clampSymmetric(B: Float32Array, A: Float32Array, q: number): void {
  const dist = Float64Array.from([...B, ...A]).sort();
  const pos = q * (dist.length - 1);
  const lo = Math.floor(pos);
  const hi = lo + 1 < dist.length ? dist[lo] + (pos - lo) * (dist[lo + 1] - dist[lo]) : dist[lo];
  for (const arr of [B, A]) for (let i = 0; i < arr.length; i++) arr[i] = Math.min(Math.max(arr[i], -hi), hi);
}

/** The host copy of `t`, which is disposed (also when the read fails). */
async function readAndDispose(t: Tensor): Promise<Float64Array> {
  try {
    return Float64Array.from(await t.data());
  } finally {
    t.dispose();
  }
}
