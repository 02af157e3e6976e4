import type { Embedding } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, cast, floor, gather, mul, noGrad, rand, tensor, tidy } from '@webpeft/tensor';
import { PromptEncoder } from '../encoder.js';
import type { PromptTuningConfig } from './config.js';

/**
 * Prompt tuning's learned rows: `embedding.weight [numVirtualTokens, tokenDim]`
 * (PEFT's `PromptEmbedding`), `RANDOM` (N(0, 1)), `SAMPLE_VOCAB` or `TEXT` init.
 * `forward()` returns the whole table `[numVirtualTokens, tokenDim]`.
 */
export class PromptEmbedding extends PromptEncoder {
  constructor(config: PromptTuningConfig, wordEmbeddings: Embedding, backend?: BackendName) {
    const n = config.numVirtualTokens * (config.numTransformerSubmodules ?? 1);
    super(n, config.tokenDim as number, backend);
    if (config.promptTuningInit === 'RANDOM' || backend === 'meta') return;
    noGrad(() =>
      tidy(() => {
        const ids = config.promptTuningInit === 'TEXT' ? textIds(config, n, backend) : sampleVocabIds(wordEmbeddings.numEmbeddings, n, backend);
        assign(this.embedding.weight, gather(wordEmbeddings.weight, ids));
      }),
    );
  }
}

/** Uniform ids in [0, vocab) from the Philox stream (same on every backend). Inside a tidy scope. */
function sampleVocabIds(vocab: number, n: number, backend?: BackendName): Tensor {
  return cast(floor(mul(rand([n], { backend }), vocab)), 'i32');
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
