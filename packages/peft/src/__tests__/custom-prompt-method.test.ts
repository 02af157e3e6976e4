import { type CausalLMOutput, type Module, Linear, causalLMFromConfig, parseSafetensors, rawToTensor } from '@webpeft/nn';
import { type BackendName, type Tensor, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, sgdStep, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type PromptLearningConfig,
  type PromptableModel,
  PromptEncoder,
  asPromptable,
  backendOf,
  configError,
  getPeftModel,
  loadPromptLearningModel,
  memoryFiles,
  prependVirtualTokens,
  promptLearningConfigFromJson,
  promptLearningConfigToJson,
  registerPeftMethod,
  resolvePromptLearningConfig,
} from '../index.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// A prompt-learning method defined entirely outside the package, through its public
// exports: low-rank virtual tokens `U W^T` (U [P, rank] learned rows, W [dim, rank] an
// up-projection), prepended to the input embeddings. Saved as PEFT saves projected
// prompts: `prompt_embeddings` holds `U W^T`, and an inference-mode encoder is a plain table.

interface LowRankPromptConfig extends PromptLearningConfig {
  peftType: 'LOW_RANK_PROMPT';
  rank?: number;
}

function sizes(c: LowRankPromptConfig): { rows: number; dim: number; rank: number } {
  if (!c.tokenDim || !c.rank) configError('LOW_RANK_PROMPT', 'tokenDim and rank must be resolved');
  return { rows: c.numVirtualTokens, dim: c.tokenDim, rank: c.rank };
}

class LowRankPrompt extends PromptEncoder {
  readonly up: Linear;

  constructor(c: LowRankPromptConfig, backend?: BackendName) {
    const { rows, dim, rank } = sizes(c);
    super(rows, rank, backend);
    this.up = this.registerModule('up', new Linear(rank, dim, { bias: false, backend }));
  }

  override forward(): Tensor {
    return tidy(() => this.up.forward(this.rows()));
  }
}

registerPeftMethod<LowRankPromptConfig>({
  kind: 'prompt',
  peftType: 'LOW_RANK_PROMPT',
  resolveConfig(c, model) {
    const rank = c.rank ?? 2;
    if (!(Number.isInteger(rank) && rank > 0)) configError('LOW_RANK_PROMPT', `rank must be a positive integer, got ${rank}`);
    return { ...resolvePromptLearningConfig(c, model), rank };
  },
  configToJson: (c) => ({ ...promptLearningConfigToJson(c), rank: c.rank }),
  configFromJson: (j) => ({ ...promptLearningConfigFromJson(j), peftType: 'LOW_RANK_PROMPT', rank: Number(j.rank) }),
  createEncoder(c, model) {
    const backend = backendOf(model);
    const { rows, dim } = sizes(c);
    return c.inferenceMode ? new PromptEncoder(rows, dim, backend) : new LowRankPrompt(c, backend);
  },
  injection: prependVirtualTokens,
});

const GPT2 = { model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 32, n_positions: 32, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };

function lm(backend: BackendName): PromptableModel {
  manualSeed(21);
  const model: Module = own(causalLMFromConfig(GPT2, { backend }));
  return asPromptable(model, 'LOW_RANK_PROMPT');
}

function ownOutput(out: CausalLMOutput): CausalLMOutput {
  own(out.logits);
  if (out.loss) own(out.loss);
  return out;
}

beforeAll(async () => {
  await initBackends();
});

describe('a user-defined prompt-learning method through the public API', () => {
  it('trains (loss falls, only its parameters get gradients), saves U W^T as prompt_embeddings and reloads', async () => {
    for (const backend of backendsUnderTest()) {
      const model = lm(backend);
      const peft = own(getPeftModel(model, { peftType: 'LOW_RANK_PROMPT', numVirtualTokens: 4, rank: 2 }));
      const encoder = peft.encoder();
      expect(encoder).toBeInstanceOf(LowRankPrompt);
      // U [4, 2] + W [16, 2]: the base is frozen.
      expect(peft.getNbTrainableParameters().trainable).toBe(4 * 2 + 16 * 2);
      const ids = own(tensor(randomInts(2 * 6, 32, 5), [2, 6], { dtype: 'i32', backend }));
      const labels = own(tensor(randomInts(2 * 6, 32, 6), [2, 6], { dtype: 'i32', backend }));

      const losses: number[] = [];
      for (let step = 0; step < 6; step++) {
        const out = peft.forward({ inputIds: ids, labels });
        out.loss!.backward();
        losses.push(await out.loss!.item());
        out.logits.dispose();
        out.loss!.dispose();
        if (step === 0) {
          const mine = new Set(encoder.parameters());
          for (const p of peft.parameters()) expect(p.grad !== null, `grad of a ${mine.has(p) ? 'method' : 'base'} parameter`).toBe(mine.has(p));
        }
        sgdStep(peft.trainableParameters(), 0.5);
      }
      expect(losses[5], `losses ${losses.join(', ')}`).toBeLessThan(losses[0]);

      // The saved tensor is U W^T, checked against a float64 product on the host.
      const U = await encoder.embedding.weight.data();
      const W = await (encoder as LowRankPrompt).up.weight.data();
      const want = Array.from({ length: 4 * 16 }, (_, i) => {
        const [p, d] = [Math.floor(i / 16), i % 16];
        return U[p * 2] * W[d * 2] + U[p * 2 + 1] * W[d * 2 + 1];
      });
      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
      expect(cfg).toMatchObject({ peft_type: 'LOW_RANK_PROMPT', rank: 2, num_virtual_tokens: 4, token_dim: 16, num_layers: 2 });
      const saved = parseSafetensors(dir.files.get('adapter_model.safetensors')!).tensors.get('prompt_embeddings')!;
      expect(saved.shape).toEqual([4, 16]);
      expectClose(await own(rawToTensor(saved, { backend })).data(), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} prompt_embeddings` });

      const trained = await ownOutput(peft.forward({ inputIds: ids })).logits.data();
      const loaded = own(await loadPromptLearningModel(lm(backend), dir));
      expect(loaded.encoder()).not.toBeInstanceOf(LowRankPrompt);
      expect(loaded.getNbTrainableParameters().trainable).toBe(0);
      expectClose(await ownOutput(loaded.forward({ inputIds: ids })).logits.data(), trained, { rtol: 1e-4, atol: 1e-5, label: `${backend} reloaded` });
    }
  });
});
