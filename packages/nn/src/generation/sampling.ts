import { philoxWords, wordToUniform } from '@webpeft/tensor';

/** How the next token is chosen from a row of logits (Hugging Face `generate` semantics). */
export interface SamplingOptions {
  /** Sample (true) or take the argmax (false, default). */
  doSample?: boolean;
  /** Logits are divided by it before sampling (default 1). */
  temperature?: number;
  /** Keep only the `topK` most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches `topP` (1: all). */
  topP?: number;
}

/** Index of the first maximum of `row`. */
export function argmaxRow(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * Next-token probabilities of one logits row after temperature, top-k and top-p, in
 * that order (HF's warper order). Filtered tokens get probability 0. Computed in float64.
 */
export function samplingProbabilities(row: ArrayLike<number>, options: SamplingOptions): Float64Array {
  const v = row.length;
  const temperature = options.temperature ?? 1;
  if (!(temperature > 0)) throw new RangeError(`sampling: temperature must be > 0, got ${temperature}`);
  const scaled = Float64Array.from(row, (x) => x / temperature);
  const order = Array.from({ length: v }, (_, i) => i).sort((a, b) => scaled[b] - scaled[a] || a - b);
  let keep = v;
  const topK = options.topK ?? 0;
  if (topK > 0) keep = Math.min(keep, topK);
  const mx = scaled[order[0]];
  const p = new Float64Array(v);
  let total = 0;
  for (let r = 0; r < keep; r++) total += (p[order[r]] = Math.exp(scaled[order[r]] - mx));
  const topP = options.topP ?? 1;
  if (topP < 1) {
    // Keep tokens until the cumulative probability reaches topP (at least one token).
    let cum = 0;
    let r = 0;
    for (; r < keep; r++) {
      cum += p[order[r]] / total;
      if (cum >= topP) {
        r++;
        break;
      }
    }
    for (let j = r; j < keep; j++) p[order[j]] = 0;
    keep = Math.max(1, r);
  }
  let sum = 0;
  for (let r = 0; r < keep; r++) sum += p[order[r]];
  for (let i = 0; i < v; i++) p[i] /= sum;
  return p;
}

/**
 * A reproducible host-side sampler over a Philox stream: the `n`-th draw uses word `n`
 * of stream `seed`, so the same seed gives the same tokens in every runtime and backend.
 */
export class TokenSampler {
  private counter = 0;

  constructor(readonly seed: number) {}

  /** Next uniform in [0, 1). */
  uniform(): number {
    const w = philoxWords(this.seed, this.counter++, 1)[0];
    return wordToUniform(w);
  }

  /** Chooses a token from a logits row. */
  choose(row: ArrayLike<number>, options: SamplingOptions): number {
    if (!options.doSample) return argmaxRow(row);
    const p = samplingProbabilities(row, options);
    const u = this.uniform();
    let cum = 0;
    let last = 0;
    for (let i = 0; i < p.length; i++) {
      if (p[i] === 0) continue;
      last = i;
      cum += p[i];
      if (u < cum) return i;
    }
    return last;
  }
}
