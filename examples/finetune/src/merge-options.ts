/**
 * The merge options of the CLI: `--merge-adapters DIR,DIR,...` turns the run into a merge
 * job (PEFT's `add_weighted_adapter`): the saved LoRA adapters are loaded onto `--model`,
 * combined into one adapter with `--merge-weights`, `--combination-type`, `--density`,
 * `--majority-sign`, `--svd-rank` and `--svd-clamp`, evaluated against each input and
 * saved to `--out` (and merged into the base with `--merge-and-export`). Nothing trains.
 */
import { COMBINATION_TYPES, type CombinationType, type WeightedAdapterOptions } from '@webpeft/peft';

/** `--majority-sign` values (PEFT's `majority_sign_method`). */
export const MAJORITY_SIGN = ['total', 'frequency'] as const;

/** The merge job's settings, parsed from the CLI's merge options. */
export interface MergePlan {
  /** Adapter folders (PEFT format), in order. */
  adapters: string[];
  /** One weight per adapter (any sign). */
  weights: number[];
  /** `addWeightedAdapter`'s options. */
  options: WeightedAdapterOptions & { combinationType: CombinationType };
}

/** The raw merge options (strings as given; empty: not given). */
export interface MergeOptionText {
  mergeAdapters: string;
  mergeWeights: string;
  combinationType: string;
  density: string;
  majoritySign: string;
  svdRank: string;
  svdClamp: string;
}

/** Types that take `--density` (TIES, DARE, magnitude pruning and their SVD forms). */
const DENSITY_TYPES = COMBINATION_TYPES.filter((t) => /^(ties|dare|magnitude)/.test(t));
const SVD_TYPES = COMBINATION_TYPES.filter((t) => t === 'svd' || t.endsWith('_svd'));

/**
 * Parses the merge options; null when `--merge-adapters` is absent (then any other merge
 * option is an error). `fail` throws the CLI's option error with the message.
 */
export function parseMergeOptions(t: MergeOptionText, method: string, fail: (message: string) => never): MergePlan | null {
  const others = (['mergeWeights', 'combinationType', 'density', 'majoritySign', 'svdRank', 'svdClamp'] as const).filter((k) => t[k] !== '');
  if (t.mergeAdapters === '') {
    if (others.length > 0) fail(`--${flag(others[0])} applies to --merge-adapters, which is not given`);
    return null;
  }
  if (method !== 'lora' && method !== 'qlora') fail(`--merge-adapters combines LoRA adapters: use --method lora (full-precision base) or qlora (NF4 base); got --method ${method}`);
  const adapters = t.mergeAdapters.split(',').map((s) => s.trim());
  if (adapters.some((a) => a === '')) fail(`--merge-adapters must be comma-separated adapter folders; got '${t.mergeAdapters}'`);
  const weights = t.mergeWeights === '' ? adapters.map(() => 1) : t.mergeWeights.split(',').map((s) => Number(s.trim()));
  if (t.mergeWeights !== '' && t.mergeWeights.split(',').some((s) => s.trim() === '')) fail(`--merge-weights must be comma-separated numbers; got '${t.mergeWeights}'`);
  if (weights.some((w) => !Number.isFinite(w))) fail(`--merge-weights must be comma-separated finite numbers (any sign); got '${t.mergeWeights}'`);
  if (weights.length !== adapters.length) fail(`--merge-weights needs one weight per adapter of --merge-adapters (${adapters.length}); got ${weights.length}`);
  const requested = t.combinationType === '' ? 'svd' : t.combinationType;
  if (!(COMBINATION_TYPES as readonly string[]).includes(requested)) fail(`--combination-type must be one of ${COMBINATION_TYPES.join(', ')}; got '${requested}'`);
  // PEFT's rule: a single adapter is combined linearly whatever the type.
  const type = (adapters.length === 1 ? 'linear' : requested) as CombinationType;
  const options: MergePlan['options'] = { combinationType: type };
  if (t.density !== '') {
    if (!DENSITY_TYPES.includes(type)) fail(`--density applies to --combination-type ${DENSITY_TYPES.join(', ')}; got ${type}`);
    const d = Number(t.density);
    if (!(Number.isFinite(d) && d >= 0 && d <= 1)) fail(`--density must be a number in [0, 1]; got '${t.density}'`);
    options.density = d;
  } else if (DENSITY_TYPES.includes(type)) fail(`--combination-type ${type} needs --density (the fraction of values kept, in [0, 1])`);
  if (t.majoritySign !== '') {
    if (!/ties/.test(type)) fail(`--majority-sign applies to --combination-type ties, ties_svd, dare_ties, dare_ties_svd; got ${type}`);
    if (!(MAJORITY_SIGN as readonly string[]).includes(t.majoritySign)) fail(`--majority-sign must be one of ${MAJORITY_SIGN.join(', ')}; got '${t.majoritySign}'`);
    options.majoritySignMethod = t.majoritySign as (typeof MAJORITY_SIGN)[number];
  }
  for (const key of ['svdRank', 'svdClamp'] as const) {
    if (t[key] !== '' && !SVD_TYPES.includes(type)) fail(`--${flag(key)} applies to --combination-type ${SVD_TYPES.join(', ')}; got ${type}`);
  }
  if (t.svdRank !== '') {
    const r = Number(t.svdRank);
    if (!(Number.isSafeInteger(r) && r > 0)) fail(`--svd-rank must be an integer >= 1; got '${t.svdRank}'`);
    options.svdRank = r;
  }
  if (t.svdClamp !== '') {
    const q = Number(t.svdClamp);
    if (!(Number.isFinite(q) && q >= 0 && q <= 1)) fail(`--svd-clamp must be a quantile in [0, 1]; got '${t.svdClamp}'`);
    options.svdClamp = q;
  }
  return { adapters, weights, options };
}

const flag = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
