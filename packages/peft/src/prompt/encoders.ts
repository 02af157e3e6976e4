import { type Embedding as EmbeddingLayer, Embedding, Linear, Module } from '@webpeft/nn';
import { type BackendName, type Tensor, arange, assign, cast, floor, gather, mul, noGrad, rand, tanh, tensor } from '@webpeft/tensor';
import type { PrefixTuningConfig, PromptTuningConfig } from './config.js';

/**
 * Prompt tuning's learned rows: `embedding.weight [numVirtualTokens, tokenDim]`
 * (PEFT's `PromptEmbedding`). `forward()` returns the whole table.
 */
export class PromptEmbedding extends Module {
  readonly embedding: EmbeddingLayer;

  constructor(config: PromptTuningConfig, wordEmbeddings: EmbeddingLayer, backend?: BackendName) {
    super();
    const n = config.numVirtualTokens * (config.numTransformerSubmodules ?? 1);
    const dim = config.tokenDim as number;
    // nn.Embedding's default init: N(0, 1) (RANDOM).
    this.embedding = this.registerModule('embedding', new Embedding(n, dim, { backend }));
    if (config.promptTuningInit === 'RANDOM' || backend === 'meta') return;
    const ids = config.promptTuningInit === 'TEXT' ? textIds(config, n, backend) : sampleVocabIds(wordEmbeddings.numEmbeddings, n, backend);
    noGrad(() => {
      const rows = gather(wordEmbeddings.weight, ids);
      assign(this.embedding.weight, rows);
      rows.dispose();
    });
    ids.dispose();
  }

  /** `[numVirtualTokens, tokenDim]`. */
  forward(): Tensor {
    const idx = arange(0, this.embedding.numEmbeddings, 1, { dtype: 'i32', backend: this.embedding.weight.backend.name });
    const out = this.embedding.forward(idx);
    idx.dispose();
    return out;
  }
}

function sampleVocabIds(vocab: number, n: number, backend?: BackendName): Tensor {
  // Uniform ids in [0, vocab) from the Philox stream (same on every backend).
  const u = rand([n], { backend });
  const s = mul(u, vocab);
  const f = floor(s);
  const ids = cast(f, 'i32');
  for (const t of [u, s, f]) t.dispose();
  return ids;
}

function textIds(config: PromptTuningConfig, n: number, backend?: BackendName): Tensor {
  if (!config.tokenizer) throw new Error('PROMPT_TUNING: TEXT init needs `tokenizer` in the config (an object with encode(text))');
  const enc = config.tokenizer.encode(config.promptTuningInitText as string);
  const ids = Array.from('ids' in enc ? enc.ids : enc);
  if (ids.length === 0) throw new Error('PROMPT_TUNING: promptTuningInitText tokenised to no ids');
  // PEFT: repeat the ids to at least n, then truncate.
  const reps = Math.ceil(n / ids.length);
  const all = Array.from({ length: reps }, () => ids).flat().slice(0, n);
  return tensor(Int32Array.from(all), [n], { backend });
}

/**
 * Prefix tuning's encoder (PEFT's `PrefixEncoder`): `embedding [P, layers*2*tokenDim]`,
 * or with `prefixProjection` (training) `embedding [P, tokenDim] -> Linear(tokenDim, encoderHidden)
 * -> tanh -> Linear(encoderHidden, layers*2*tokenDim)`. `forward()` returns `[P, layers*2*tokenDim]`.
 */
export class PrefixEncoder extends Module {
  readonly embedding: EmbeddingLayer;
  readonly projection: boolean;

  constructor(config: PrefixTuningConfig, backend?: BackendName) {
    super();
    const P = config.numVirtualTokens;
    const dim = config.tokenDim as number;
    const out = (config.numLayers as number) * 2 * dim;
    this.projection = Boolean(config.prefixProjection) && !config.inferenceMode;
    if (this.projection) {
      const h = config.encoderHiddenSize ?? dim;
      this.embedding = this.registerModule('embedding', new Embedding(P, dim, { backend }));
      this.registerModule('transform', new PrefixMlp(dim, h, out, backend));
    } else {
      this.embedding = this.registerModule('embedding', new Embedding(P, out, { backend }));
    }
  }

  forward(): Tensor {
    const idx = arange(0, this.embedding.numEmbeddings, 1, { dtype: 'i32', backend: this.embedding.weight.backend.name });
    const e = this.embedding.forward(idx);
    idx.dispose();
    if (!this.projection) return e;
    const out = (this as unknown as { transform: PrefixMlp }).transform.forward(e);
    e.dispose();
    return out;
  }
}

/** `Linear -> tanh -> Linear`, registered as PEFT's `transform.0` / `transform.2`. */
class PrefixMlp extends Module {
  constructor(dim: number, hidden: number, out: number, backend?: BackendName) {
    super();
    this.registerModule('0', new Linear(dim, hidden, { backend }));
    this.registerModule('2', new Linear(hidden, out, { backend }));
  }

  forward(x: Tensor): Tensor {
    const a = (this.getSubmodule('0') as Linear).forward(x);
    const t = tanh(a);
    a.dispose();
    const y = (this.getSubmodule('2') as Linear).forward(t);
    t.dispose();
    return y;
  }
}
