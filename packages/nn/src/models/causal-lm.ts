import type { AttnImplementation } from '../attention/scaled-dot-product.js';
import { type Tensor, crossEntropy, full, linearCrossEntropy, narrow, pad, reshape, tidy } from '@webpeft/tensor';
import { type AttentionContext, disposeContext } from '../attention/context.js';
import type { KVCache, LayerKeyValues } from '../attention/kv-cache.js';
import { Linear } from '../layers/linear.js';
import type { LinearLike } from '../linear-like.js';
import type { Module } from '../module.js';

/** Inputs of a causal language model's forward pass (Hugging Face argument names, camelCased). */
export interface CausalLMInput {
  /** Token ids, i32 `[B, T]`. Exactly one of `inputIds` and `inputsEmbeds` is given. */
  inputIds?: Tensor;
  /** Input embeddings `[B, T, D]` instead of ids (prompt tuning prepends learned rows). */
  inputsEmbeds?: Tensor;
  /**
   * Padding mask `[B, L]` over every key position (prefix + past + new; 1 keep, 0 pad),
   * any dtype. A mask of `[B, past + T]` is accepted with `prefixKeyValues`: the prefix
   * positions are then treated as kept. A per-query mask `[B, T, L]` (1 where new token
   * i may attend to key j) restricts attention further, e.g. to one packed sample
   * (`collatePacked`); the causal mask still applies.
   */
  attentionMask?: Tensor;
  /** Position ids, i32 `[B, T]`; default `offset + [0 .. T-1]`, offset = prefix + past length (as HF). */
  positionIds?: Tensor;
  /** Targets, i32 `[B, T]`; shifted inside (token t predicts label t+1); -100 is ignored. */
  labels?: Tensor;
  /** Cache of earlier tokens; extended in place when `useCache` (default true when given). */
  pastKeyValues?: KVCache;
  /** Return a cache (a new one when `pastKeyValues` is absent). */
  useCache?: boolean;
  /**
   * Extra keys and values per layer, `[B, H_kv, P, Dh]`, attended to before every other
   * key (prefix tuning / P-tuning v2). They are not rotated and count towards positions.
   */
  prefixKeyValues?: readonly LayerKeyValues[];
}

/** Outputs of a causal language model's forward pass. */
export interface CausalLMOutput {
  /**
   * `[B, T, V]`. Not computed when the model's `fusedCrossEntropy` is on and labels were
   * given: reading it then throws (the loss came from hidden states and the head's weight).
   */
  logits: Tensor;
  /** Mean cross-entropy over non-ignored shifted labels (scalar), when `labels` were given. */
  loss?: Tensor;
  /** The cache, extended with this call's keys and values, when `useCache`. */
  pastKeyValues?: KVCache;
}

/**
 * What `generate` needs to know of a model that puts something in front of the prompt
 * (PEFT's prompt learning): it adds it itself in a call with an empty (or no) cache, and
 * later calls see it in the cache.
 */
export interface GenerationPrefix {
  /** Positions in front of the prompt: virtual tokens, or prefix keys/values. */
  length: number;
  /**
   * `'mask'`: with a padding mask, `generate` passes position ids counted over kept tokens
   * (the model offsets them by `length`). `'cache'`: it passes none, and the model counts
   * positions from its cache (PEFT ignores position ids for prepended virtual tokens).
   */
  positions: 'mask' | 'cache';
}

/** What generation, tuners and training loops rely on in a causal LM. */
export interface CausalLM extends Module {
  /** Resolved config (model_type, sizes) of the model. */
  readonly config: { model_type: string; vocab_size: number; num_hidden_layers: number; num_key_value_heads: number; head_dim: number; hidden_size: number };
  forward(input: CausalLMInput): CausalLMOutput;
  /** Recompute each decoder layer in backward during training (see the models' TSDoc). Returns the model. */
  gradientCheckpointingEnable(): this;
  /** Keep every activation again. Returns the model. */
  gradientCheckpointingDisable(): this;
  /** Whether gradient checkpointing is on. */
  readonly isGradientCheckpointing: boolean;
  /**
   * Compute the loss of a forward with labels by the fused linear + cross-entropy
   * (`linearCrossEntropy`: vocabulary chunks, no `[B, T, V]` logits), as Liger's and
   * Apple's cut-cross-entropy do; the output then has no logits. Off by default.
   */
  fusedCrossEntropy?: boolean;
  /** Chooses `'eager'` or `'fused'` attention (see the models' TSDoc); on models that have attention of their own. Returns the model. */
  setAttnImplementation?(impl: AttnImplementation): this;
  /** The input embedding layer (`transformer.wte`, `model.embed_tokens`). */
  getInputEmbeddings(): Module & { weight: Tensor; forward(ids: Tensor): Tensor };
  /** Present on models that add a prefix of their own to every prompt (see {@link GenerationPrefix}). */
  generationPrefix?(): GenerationPrefix;
}

/**
 * Hugging Face's causal-LM loss: logits `[B, T, V]`, labels i32 `[B, T]`; position t is
 * scored against label t+1 (labels shifted left, padded with -100), positions with
 * label -100 are ignored, mean over the rest (0 when no label is counted, see
 * `crossEntropy`). Scalar.
 */
export function causalLMLoss(logits: Tensor, labels: Tensor): Tensor {
  const [b, t, v] = logits.shape;
  return tidy(() => crossEntropy(reshape(logits, [b * t, v]), shiftedLabels(labels, b, t, 'causalLMLoss'), { ignoreIndex: -100 }));
}

/**
 * Labels i32 `[B, T]` shifted for next-token prediction, flat `[B * T]`: position t gets
 * label t+1, the last position -100. Shifting the labels (cheap) rather than the logits
 * (`[B, T, V]`).
 */
function shiftedLabels(labels: Tensor, b: number, t: number, what: string): Tensor {
  if (labels.dtype !== 'i32' || labels.rank !== 2 || labels.shape[0] !== b || labels.shape[1] !== t) {
    throw new Error(`${what}: labels must be i32 [${b}, ${t}], got ${labels.dtype} [${labels.shape.join(', ')}]`);
  }
  return tidy(() => {
    const backend = labels.backend.name;
    const shifted = t > 1 ? pad(narrow(labels, 1, 1, t - 1), [[0, 0], [0, 1]], -100) : full([b, 1], -100, { dtype: 'i32', backend });
    return reshape(shifted, [b * t]);
  });
}

/**
 * The causal-LM loss of {@link causalLMLoss} from the final hidden states `[B, T, D]`
 * and the head's weight `[V, D]` (and bias), by `linearCrossEntropy`: the same value and
 * gradients without the `[B, T, V]` logits.
 */
export function fusedCausalLMLoss(lmHead: LinearLike, hidden: Tensor, labels: Tensor): Tensor {
  if (!(lmHead instanceof Linear)) {
    throw new Error(
      `fusedCrossEntropy: the fused loss reads the head's weight, and lm_head is a ${lmHead.constructor.name} (an adapter or a quantized layer on the head); turn fusedCrossEntropy off for this model`,
    );
  }
  const [b, t, d] = hidden.shape;
  return tidy(() =>
    linearCrossEntropy(reshape(hidden, [b * t, d]), lmHead.weight, shiftedLabels(labels, b, t, 'fusedCausalLMLoss'), {
      ignoreIndex: -100,
      ...(lmHead.bias ? { bias: lmHead.bias } : {}),
    }),
  );
}

/** An output whose `logits` were not computed: reading them throws, naming why. */
function withoutLogits(out: Omit<CausalLMOutput, 'logits'>): CausalLMOutput {
  // Not enumerable, so scopes collecting the output's tensors do not read it.
  return Object.defineProperty(out, 'logits', {
    enumerable: false,
    get(): never {
      throw new Error('CausalLMOutput.logits: not computed, the model has fusedCrossEntropy on and the call passed labels (the loss was computed without logits); turn it off, or call without labels, to get logits');
    },
  }) as CausalLMOutput;
}

/**
 * The head of every causal LM: logits `[B, T, V]` from the final hidden states
 * `[B, T, D]`, the loss when `labels` are given, and the cache when the context keeps
 * one. With `fused` and labels, the loss comes from {@link fusedCausalLMLoss} and there
 * are no logits. Frees `hidden` and the attention context.
 */
export function causalLMHead(lmHead: LinearLike, hidden: Tensor, ctx: AttentionContext, labels?: Tensor, fused = false): CausalLMOutput {
  try {
    return tidy(() => {
      const cache = ctx.cache && ctx.storeCache ? { pastKeyValues: ctx.cache } : {};
      if (labels && fused) return withoutLogits({ loss: fusedCausalLMLoss(lmHead, hidden, labels), ...cache });
      const logits = lmHead.forward(hidden);
      const out: CausalLMOutput = { logits, ...cache };
      if (labels) out.loss = causalLMLoss(logits, labels);
      return out;
    });
  } finally {
    hidden.dispose();
    disposeContext(ctx);
  }
}
