/**
 * PEFT's task-tensor merges (`peft/utils/merge_utils.py`), written with tensor ops so they
 * run on any backend:
 * - task arithmetic (Ilharco et al. 2023, arXiv:2212.04089): `sum_i w_i t_i`;
 * - magnitude pruning: keep the `floor(density * n)` largest `|t_i|`, then task arithmetic;
 * - TIES (Yadav et al. 2023, arXiv:2306.01708): magnitude pruning, a majority sign per
 *   element, and the mean of the weighted values that agree with it;
 * - DARE (Yu et al. 2024, arXiv:2311.03099): keep each element with probability `density`
 *   and rescale by `1 / density`, then task arithmetic (`dare_linear`) or TIES (`dare_ties`).
 */
import { type Tensor, add, cast, div, equal, greaterEqual, keep, less, maximum, mul, rand, sign, stack, sub, sum, tensor, tidy, where } from '@webpeft/tensor';

/** How {@link mergeTaskTensors} combines same-shaped task tensors. */
export type TaskMergeMethod = 'linear' | 'ties' | 'dare_linear' | 'dare_ties' | 'magnitude_prune';

/** How TIES elects the sign of an element: by the sign of the sum of values, or of the count of signs. */
export type MajoritySignMethod = 'total' | 'frequency';

/** Options of {@link mergeTaskTensors}. */
export interface TaskMergeOptions {
  /** Fraction of each task tensor kept, in [0, 1] (needed by every method but `linear`; 1 keeps all). */
  density?: number;
  /** TIES' sign election (default `'total'`). */
  majoritySignMethod?: MajoritySignMethod;
  /**
   * DARE's keep masks, one per task tensor and of its shape (1 keeps, 0 drops). Default:
   * fresh Bernoulli(`density`) masks from the global RNG stream (`manualSeed`). Passing them
   * makes DARE deterministic, e.g. to reproduce another implementation's draw.
   */
  dareMasks?: readonly Tensor[];
}

const METHODS: readonly TaskMergeMethod[] = ['linear', 'ties', 'dare_linear', 'dare_ties', 'magnitude_prune'];

/**
 * Merges task tensors `t_i` (all of one shape, e.g. `[r, in]`) with weights `w_i` into one
 * new tensor of that shape, as PEFT's function of the same name (`task_arithmetic`, `ties`,
 * `dare_linear`, `dare_ties`, `magnitude_prune`). TIES' sign vote uses the pruned,
 * unweighted tensors and the merge divides by how many agree (at least 1), as PEFT does.
 * Magnitude pruning reads the tensors back once to find the top `k` (no top-k op here).
 *
 * @example const merged = await mergeTaskTensors('ties', [A1, A2], [0.5, 1], { density: 0.5 });
 */
export async function mergeTaskTensors(method: TaskMergeMethod, tensors: readonly Tensor[], weights: readonly number[], options: TaskMergeOptions = {}): Promise<Tensor> {
  checkMergeArgs(method, tensors, weights, options);
  const density = options.density ?? 1;
  const pruneBy = method === 'ties' || method === 'magnitude_prune' ? 'magnitude' : method.startsWith('dare') ? 'random' : 'none';
  // PEFT's prune(): a density of 1 or more keeps every value and does not rescale.
  const masks = pruneBy === 'none' || density >= 1 ? null : pruneBy === 'magnitude' ? await Promise.all(tensors.map((t) => topKMask(t, density))) : dareMasks(tensors, density, options.dareMasks);
  try {
    return tidy(() => {
      let pruned = masks ? tensors.map((t, i) => where(masks[i], t, 0)) : [...tensors];
      if (masks && pruneBy === 'random') pruned = pruned.map((t) => div(t, density));
      const weighted = pruned.map((t, i) => mul(t, weights[i]));
      if (method === 'ties' || method === 'dare_ties') return disjointMerge(pruned, weighted, options.majoritySignMethod ?? 'total');
      return weighted.reduce((acc, t) => add(acc, t));
    });
  } finally {
    // Caller masks stay the caller's.
    if (masks && masks !== options.dareMasks) for (const m of masks) m.dispose();
  }
}

/** TIES' elect-and-merge: `sum_i w_i t_i [sign t_i = s] / max(#agree, 1)`. Inside a tidy scope. */
function disjointMerge(pruned: Tensor[], weighted: Tensor[], method: MajoritySignMethod): Tensor {
  const signs = stack(pruned.map((t) => sign(t)), 0);
  const magnitude = method === 'total' ? sum(stack(pruned, 0), 0) : sum(signs, 0);
  const majority = sub(mul(cast(greaterEqual(magnitude, 0), 'f32'), 2), 1);
  // sign(0) = 0 agrees with neither sign: pruned values are never counted.
  const agree = cast(equal(signs, majority), 'f32');
  const mixed = sum(mul(stack(weighted, 0), agree), 0);
  return div(mixed, maximum(sum(agree, 0), 1));
}

/** A 0/1 f32 mask of the `floor(density * n)` largest `|t|` (torch.topk's choice up to ties). */
async function topKMask(t: Tensor, density: number): Promise<Tensor> {
  const values = await t.data();
  const k = Math.floor(density * t.size);
  const order = Array.from({ length: values.length }, (_, i) => i).sort((a, b) => Math.abs(values[b]) - Math.abs(values[a]));
  const mask = new Float32Array(values.length);
  for (let i = 0; i < k; i++) mask[order[i]] = 1;
  return tensor(mask, t.shape, { backend: t.backend.name });
}

function dareMasks(tensors: readonly Tensor[], density: number, given: readonly Tensor[] | undefined): readonly Tensor[] {
  if (given) return given;
  return tensors.map((t) => keep(tidy(() => cast(less(rand(t.shape, { backend: t.backend.name }), density), 'f32'))));
}

function checkMergeArgs(method: TaskMergeMethod, tensors: readonly Tensor[], weights: readonly number[], o: TaskMergeOptions): void {
  const fail = (msg: string): never => {
    throw new Error(`mergeTaskTensors (${method}): ${msg}`);
  };
  if (!METHODS.includes(method)) fail(`unknown method '${String(method)}' (${METHODS.join(', ')})`);
  if (tensors.length === 0 || tensors.length !== weights.length) fail(`need one weight per task tensor (got ${tensors.length} tensors, ${weights.length} weights)`);
  const shape = tensors[0].shape.join(',');
  for (const t of tensors) if (t.shape.join(',') !== shape) fail(`task tensors must share one shape, got [${tensors.map((x) => `[${x.shape.join(', ')}]`).join(', ')}]`);
  for (const w of weights) if (!Number.isFinite(w)) fail(`weights must be finite numbers, got ${w}`);
  if (method !== 'linear') {
    const d = o.density;
    if (d === undefined) fail(`option 'density' is required (the fraction of values kept, in [0, 1])`);
    if (!(typeof d === 'number' && d >= 0 && d <= 1)) fail(`option 'density' must be in [0, 1], got ${String(d)}`);
    if (method.startsWith('dare') && d === 0) fail(`option 'density' must be > 0 for DARE (it rescales by 1 / density)`);
  }
  const m = o.majoritySignMethod;
  if (m !== undefined && m !== 'total' && m !== 'frequency') fail(`option 'majoritySignMethod' must be 'total' or 'frequency', got ${JSON.stringify(m)}`);
  if (o.dareMasks) {
    if (!method.startsWith('dare')) fail(`option 'dareMasks' applies only to dare_linear and dare_ties`);
    if (o.dareMasks.length !== tensors.length) fail(`option 'dareMasks' needs one mask per task tensor (got ${o.dareMasks.length} for ${tensors.length})`);
    for (const mk of o.dareMasks) if (mk.shape.join(',') !== shape) fail(`option 'dareMasks': mask shape [${mk.shape.join(', ')}] is not the task tensors' [${shape.replaceAll(',', ', ')}]`);
  }
}
