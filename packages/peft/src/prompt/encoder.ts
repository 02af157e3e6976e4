import { type CausalLMInput, type CausalLMOutput, Embedding, Module } from '@webpeft/nn';
import { type BackendName, type Tensor, arange, tidy } from '@webpeft/tensor';
import type { PromptLearningConfig } from './config.js';

/** A causal LM as prompt learning needs it (the `CausalLM` of `@webpeft/nn`). */
export interface PromptableModel extends Module {
  /** `{ inputIds | inputsEmbeds, labels?, attentionMask?, prefixKeyValues? } -> { logits, loss }`. */
  forward(input: CausalLMInput): CausalLMOutput;
  /** The token embedding `[vocab, hidden]` (prompt tuning reads and prepends to it). */
  getInputEmbeddings(): Embedding;
}

/**
 * How a model consumes the virtual tokens of a prompt-learning method: runs `model` on
 * `input` with `tokens` (the encoder's output, `[P, width]`) applied. Built in:
 * `prependVirtualTokens` (prompt tuning) and `injectPrefixKeyValues` (prefix tuning).
 * `tokens` stays the caller's to dispose.
 */
export type PromptInjection = (model: PromptableModel, input: CausalLMInput, tokens: Tensor, config: PromptLearningConfig) => CausalLMOutput;

/**
 * The encoder of one prompt-learning adapter (PEFT's `PromptEmbedding`,
 * `PrefixEncoder`, ...): an `embedding [rows, width]` of learned rows, and `forward()`
 * giving the virtual tokens `[rows, out]`. This base returns the rows as they are;
 * subclasses transform them (prefix tuning's projection) or initialise them (prompt
 * tuning's vocabulary init). What PEFT saves as `prompt_embeddings` is `forward()`'s
 * output, and it loads back into `embedding.weight` of an encoder built for inference.
 */
export class PromptEncoder extends Module {
  /** The learned rows, `weight [rows, width]`. */
  readonly embedding: Embedding;

  constructor(rows: number, width: number, backend?: BackendName) {
    super();
    // nn.Embedding's default init: N(0, 1).
    this.embedding = this.registerModule('embedding', new Embedding(rows, width, { backend }));
  }

  /** Number of virtual tokens. */
  get numRows(): number {
    return this.embedding.numEmbeddings;
  }

  /** The rows through the embedding's forward (so gradients reach `embedding.weight`), `[rows, width]`. */
  protected rows(): Tensor {
    return tidy(() => this.embedding.forward(arange(0, this.numRows, 1, { dtype: 'i32', backend: this.embedding.weight.backend.name })));
  }

  /** The virtual tokens, `[rows, out]` (a new tensor). */
  forward(): Tensor {
    return this.rows();
  }
}
