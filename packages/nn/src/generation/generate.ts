import { type Tensor, cast, narrow, noGrad, tensor, tidy } from '@webpeft/tensor';
import { checkSequenceLength, checkTokenIds } from '../models/input-limits.js';
import { KVCache } from '../attention/kv-cache.js';
import type { CausalLM } from '../models/causal-lm.js';
import { type SamplingOptions, TokenSampler } from './sampling.js';
import { withEvalMode } from './eval-mode.js';

/** Options of {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to add to each row. */
  maxNewTokens: number;
  /** Seed of the sampling stream (default 0); the same seed gives the same tokens. */
  seed?: number;
  /** Reuse keys and values of earlier tokens (default true). Without it every step reruns the whole sequence. */
  useCache?: boolean;
  /** Prompt padding mask, `number[][]` `[B, T]` (1 keep, 0 pad), for left-padded batches. */
  attentionMask?: number[][];
  /** Rows stop after emitting one of these (default: the config's `eos_token_id`). */
  eosTokenId?: number | number[];
  /** Filler for rows that already stopped (default: the first eos id, else 0). */
  padTokenId?: number;
  /** Also return the raw next-token logits of every step. */
  outputLogits?: boolean;
}

/** Result of {@link generate}. */
export interface GenerateOutput {
  /** Prompt plus new tokens, per row. */
  sequences: number[][];
  /** Per step, the last-position logits `[B * V]` (with `outputLogits`). */
  logits?: Float32Array[];
}

/**
 * Autoregressive decoding: greedy (default) or sampling with temperature, top-k and
 * top-p, reproducible by `seed`. Runs without gradients, in eval mode (the model's mode
 * is restored after, also when calls overlap). With a left-padded batch pass
 * `attentionMask`; positions then count only kept tokens (as HF's `generate`).
 *
 * A model with a {@link GenerationPrefix} (a prompt-learning model) adds its virtual
 * tokens or prefix keys/values itself on the first step, when the cache is empty; later
 * steps pass only the new token, the cache and the prompt's mask. Its prefix counts
 * towards the length limit, and with `positions: 'cache'` no position ids are passed
 * (the model counts them from its cache, as PEFT ignores them for virtual tokens).
 * @example
 * const { sequences } = await generate(model, [[464, 3290]], { maxNewTokens: 20, doSample: true, topP: 0.9, seed: 1 });
 */
export async function generate(model: CausalLM, prompt: number[][], options: GenerateOptions): Promise<GenerateOutput> {
  const batch = prompt.length;
  const promptLen = prompt[0]?.length ?? 0;
  if (batch === 0 || promptLen === 0 || prompt.some((r) => r.length !== promptLen)) {
    throw new Error('generate: prompt must be a non-empty [B, T] array of equal-length rows (left-pad and pass attentionMask)');
  }
  const eosCfg = options.eosTokenId ?? (model.config as { eos_token_id?: number | number[] }).eos_token_id;
  const eos = new Set(eosCfg === undefined ? [] : Array.isArray(eosCfg) ? eosCfg : [eosCfg]);
  const pad = options.padTokenId ?? (eos.size > 0 ? [...eos][0] : 0);
  const sampler = new TokenSampler(options.seed ?? 0);
  const useCache = options.useCache ?? true;
  const seqs = prompt.map((r) => [...r]);
  const mask = options.attentionMask?.map((r) => [...r]) ?? null;
  if (mask && (mask.length !== batch || mask.some((r) => r.length !== promptLen))) throw new Error(`generate: attentionMask must be [${batch}, ${promptLen}]`);
  // Checked on the host before any work: the prompt is host data, and the positions the
  // last step needs are known (the last new token is never fed back).
  const type = model.config.model_type;
  checkTokenIds(type, model.config.vocab_size, prompt, 'prompt');
  const prefix = model.generationPrefix?.() ?? null;
  const maskPositions = mask !== null && prefix?.positions !== 'cache';
  if (options.maxNewTokens > 0) {
    const kept = maskPositions ? Math.max(...mask.map((r) => r.reduce((n, m) => n + (m ? 1 : 0), 0))) : promptLen;
    const p = prefix?.length ?? 0;
    checkSequenceLength(type, model.config, p + kept + options.maxNewTokens - 1, `${p > 0 ? `prefix ${p} + ` : ''}prompt ${kept} + maxNewTokens ${options.maxNewTokens} - 1`);
  }
  const done = new Array<boolean>(batch).fill(false);
  const stepLogits: Float32Array[] = [];
  const cache = useCache ? new KVCache() : null;
  // Inputs go where the model's weights are, not to the default backend.
  const backend = model.getInputEmbeddings().weight.backend.name;
  return withEvalMode(model, async () => {
    try {
      for (let step = 0; step < options.maxNewTokens; step++) {
        // With a cache only the new token runs (the whole prompt on the first step).
        const start = cache && step > 0 ? seqs[0].length - 1 : 0;
        const ids = seqs.map((r) => r.slice(start));
        // A scope, so a forward that throws leaves no inputs behind.
        const lastT = tidy(() => noGrad(() => {
          const t = ids[0].length;
          const inputIds = tensor(Int32Array.from(ids.flat()), [batch, t], { dtype: 'i32', backend });
          const extra: { attentionMask?: Tensor; positionIds?: Tensor } = {};
          if (mask) {
            extra.attentionMask = tensor(Int32Array.from(mask.flat()), [batch, mask[0].length], { dtype: 'i32', backend });
            if (maskPositions) extra.positionIds = tensor(Int32Array.from(mask.flatMap((r) => positionsFromMask(r).slice(start))), [batch, t], { dtype: 'i32', backend });
          }
          const out = model.forward({ inputIds, ...extra, ...(cache ? { pastKeyValues: cache, useCache: true } : {}) });
          // The last position of the output: a model may prepend virtual tokens to the input.
          const lastStep = narrow(out.logits, 1, out.logits.shape[1] - 1, 1);
          out.logits.dispose();
          inputIds.dispose();
          extra.attentionMask?.dispose();
          extra.positionIds?.dispose();
          return lastStep;
        }));
        // Sampling reads f32 logits (an f16 model's are widened exactly).
        const lastF32 = lastT.dtype === 'f32' ? lastT : cast(lastT, 'f32');
        const last = await lastF32.data();
        if (lastF32 !== lastT) lastF32.dispose();
        lastT.dispose();
        const v = last.length / batch;
        if (options.outputLogits) stepLogits.push(Float32Array.from(last as Float32Array));
        for (let b = 0; b < batch; b++) {
          const token = done[b] ? pad : sampler.choose((last as Float32Array).subarray(b * v, (b + 1) * v), options);
          seqs[b].push(token);
          if (eos.has(token)) done[b] = true;
          mask?.[b].push(1);
        }
        if (done.every(Boolean)) break;
      }
    } finally {
      cache?.dispose();
    }
    return options.outputLogits ? { sequences: seqs, logits: stepLogits } : { sequences: seqs };
  });
}

/** HF's generation positions: cumulative count of kept tokens minus one (pads get 1). */
function positionsFromMask(row: number[]): number[] {
  let seen = 0;
  return row.map((m) => (m ? seen++ : 1));
}
