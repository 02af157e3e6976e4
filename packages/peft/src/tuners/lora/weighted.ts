import { type Tensor, add, assign, concat, mul, noGrad, pad, tensor, tidy, zeros } from '@webpeft/tensor';
import { svd } from '../../linalg/svd.js';
import type { PeftConfig } from '../../config.js';
import type { AnyTunerLayer } from '../tuner-model.js';
import type { ResolvedLoraConfig } from './config.js';
import { LoraEmbedding } from './embedding.js';
import { LoraLinear } from './linear.js';

/** What {@link addWeightedAdapter} needs of a `PeftModel` (structural, so this file does not import it). */
export interface WeightedAdapterHost {
  /** Resolved config per adapter. */
  readonly peftConfig: ReadonlyMap<string, PeftConfig>;
  /** Adds (injects) an adapter. */
  addAdapter(name: string, config: PeftConfig): void;
  /** The tuner model holding the wrapped layers. */
  readonly base_model: {
    /** Every wrapped layer with its path. */
    tunerLayers(): [string, AnyTunerLayer][];
  };
}

/** How {@link addWeightedAdapter} combines adapters (PEFT's `combination_type`). */
export type CombinationType = 'linear' | 'cat' | 'svd';

/**
 * PEFT's `add_weighted_adapter` for LoRA: a new adapter `name` from `adapters`
 * weighted by `weights`, with `loraAlpha = r` (PEFT's choice), on the union of targets.
 * - `linear` (equal ranks): `A' = sum sqrt(w_i s_i) A_i`, `B' = sum sqrt(w_i s_i) B_i`.
 * - `cat`: `A' = [w_1 s_1 A_1; w_2 s_2 A_2; ...]`, `B' = [B_1, B_2, ...]` (rank = sum of ranks).
 * - `svd`: `delta = sum w_i s_i * delta_i` with `delta_i = s_i B_i A_i` (PEFT scales twice),
 *   truncated to `svdRank` (default: the largest rank) by a float64 SVD on the host
 *   ({@link svd}): `B' = U_k S_k`, `A' = Vh_k`.
 * DoRA adapters are rejected, as in PEFT.
 */
export async function addWeightedAdapter(
  peft: WeightedAdapterHost,
  adapters: string[],
  weights: number[],
  name: string,
  options: { combinationType?: CombinationType; svdRank?: number } = {},
): Promise<void> {
  const type = options.combinationType ?? 'svd';
  if (adapters.length === 0 || adapters.length !== weights.length) throw new Error(`addWeightedAdapter: need one weight per adapter (got ${adapters.length} adapters, ${weights.length} weights)`);
  const configs = adapters.map((a) => {
    const c = peft.peftConfig.get(a);
    if (!c) throw new Error(`addWeightedAdapter: adapter ${a} does not exist`);
    if (c.peftType !== 'LORA') throw new Error(`addWeightedAdapter: adapter ${a} is ${c.peftType}, only LORA adapters combine`);
    if ((c as ResolvedLoraConfig).useDora) throw new Error(`addWeightedAdapter: adapter ${a} uses DoRA, which cannot be combined`);
    return c as ResolvedLoraConfig;
  });
  if (!['linear', 'cat', 'svd'].includes(type)) throw new Error(`addWeightedAdapter: combination type '${type}' is not supported (linear, cat, svd)`);
  const ranks = configs.map((c) => c.r);
  let newRank: number;
  if (type === 'linear') {
    if (new Set(ranks).size > 1) throw new Error(`addWeightedAdapter: all adapters must have the same r for 'linear' (got ${ranks.join(', ')})`);
    newRank = ranks[0];
  } else if (type === 'cat') newRank = ranks.reduce((a, b) => a + b, 0);
  else newRank = options.svdRank ?? Math.max(...ranks);
  const targets = configs.map((c) => c.targetModules);
  const targetModules = targets.every(Array.isArray) ? [...new Set(targets.flat() as string[])] : targets.map((t) => (Array.isArray(t) ? `(${t.map((x) => `.*\\.${x}`).join('|')})` : `(${t})`)).join('|');
  peft.addAdapter(name, { ...configs[0], r: newRank, loraAlpha: newRank, targetModules, rankPattern: {}, alphaPattern: {} } as ResolvedLoraConfig);

  for (const [path, layer] of peft.base_model.tunerLayers()) {
    if (!(layer instanceof LoraLinear || layer instanceof LoraEmbedding) || !layer.adapterNames().includes(name)) continue;
    const present = adapters.map((a, i) => [a, weights[i]] as const).filter(([a]) => layer.adapterNames().includes(a));
    if (present.length === 0) throw new Error(`addWeightedAdapter: no matching LoRAs found at '${path}'`);
    const target = layer.weights(name);
    if (type === 'svd') {
      await svdCombine(layer, present, newRank, target.A, target.B);
      continue;
    }
    noGrad(() =>
      tidy(() => {
        const parts = present.map(([a, w]) => ({ ...layer.weights(a), w }));
        if (type === 'linear') {
          assign(target.A, sumScaled(parts.map((p) => [p.A, Math.sqrt(checkNonNegative(p.w * p.scaling))])));
          assign(target.B, sumScaled(parts.map((p) => [p.B, Math.sqrt(p.w * p.scaling)])));
          return;
        }
        const catA = concat(parts.map((p) => mul(p.A, p.w * p.scaling)), 0);
        const catB = concat(parts.map((p) => p.B), 1);
        // Rows past the present adapters' ranks stay zero (a module some adapters skip).
        assign(target.A, pad(catA, [[0, newRank - catA.shape[0]], [0, 0]]));
        assign(target.B, pad(catB, [[0, 0], [0, newRank - catB.shape[1]]]));
      }),
    );
  }
}

function checkNonNegative(v: number): number {
  if (v < 0) throw new Error(`addWeightedAdapter: 'linear' needs weight * scaling >= 0 (got ${v}); use 'cat' or 'svd'`);
  return v;
}

/** `sum_i s_i t_i`. Inside a tidy scope. */
function sumScaled(terms: [Tensor, number][]): Tensor {
  return terms.reduce((acc, [t, s]) => add(acc, mul(t, s)), zeros(terms[0][0].shape, { backend: terms[0][0].backend.name }));
}

async function svdCombine(layer: LoraLinear | LoraEmbedding, present: (readonly [string, number])[], rank: number, targetA: Tensor, targetB: Tensor): Promise<void> {
  // Delta in the [rows, cols] = B A orientation: [out, in] for linear, [dim, numEmbeddings] for embeddings.
  const [rows, cols] = [targetB.shape[0], targetA.shape[1]];
  const total = new Float64Array(rows * cols);
  for (const [a, w] of present) {
    const data = await readAndDispose(layer.deltaWeight(a));
    const factor = w * layer.weights(a).scaling;
    const transposed = layer instanceof LoraEmbedding;
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) total[i * cols + j] += factor * data[transposed ? j * rows + i : i * cols + j];
  }
  const { U, S, Vh, k } = svd(total, rows, cols);
  if (rank > k) throw new Error(`addWeightedAdapter: svdRank ${rank} exceeds min(${rows}, ${cols})`);
  const B = new Float32Array(rows * rank);
  const A = new Float32Array(rank * cols);
  for (let i = 0; i < rows; i++) for (let c = 0; c < rank; c++) B[i * rank + c] = U[i * k + c] * S[c];
  for (let c = 0; c < rank; c++) for (let j = 0; j < cols; j++) A[c * cols + j] = Vh[c * cols + j];
  const backend = targetA.backend.name;
  noGrad(() =>
    tidy(() => {
      assign(targetA, tensor(A, [rank, cols], { backend }));
      assign(targetB, tensor(B, [rows, rank], { backend }));
    }),
  );
}

/** The host copy of `t`, which is disposed (also when the read fails). */
async function readAndDispose(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}
