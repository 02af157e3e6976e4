import type { CausalLM, Tokenizer } from '@webpeft/nn';
import { generate } from '@webpeft/nn';
import { type BackendName, type Tensor, noGrad, tensor, tidy } from '@webpeft/tensor';
import type { TokenBatch } from './batches.js';

/** Uploads a host batch as i32 tensors `[B, T]` (a packed batch's mask as `[B, T, T]`). */
export function batchTensors(batch: TokenBatch, backend: BackendName): { inputIds: Tensor; labels: Tensor; attentionMask?: Tensor; positionIds?: Tensor } {
  const shape = [batch.batchSize, batch.seqLen];
  const out: ReturnType<typeof batchTensors> = {
    inputIds: tensor(batch.inputIds, shape, { dtype: 'i32', backend }),
    labels: tensor(batch.labels, shape, { dtype: 'i32', backend }),
  };
  if (batch.attentionMask) {
    const perQuery = batch.attentionMask.length !== batch.batchSize * batch.seqLen;
    out.attentionMask = tensor(batch.attentionMask, perQuery ? [...shape, batch.seqLen] : shape, { dtype: 'i32', backend });
  }
  if (batch.positionIds) out.positionIds = tensor(batch.positionIds, shape, { dtype: 'i32', backend });
  return out;
}

/** Mean causal-LM loss over `batches` (no gradients, eval mode for the call). */
export async function evaluate(model: CausalLM, batches: readonly TokenBatch[], backend: BackendName): Promise<number> {
  const wasTraining = model.training;
  model.eval();
  let total = 0;
  for (const batch of batches) {
    const loss = noGrad(() =>
      tidy(() => {
        return model.forward(batchTensors(batch, backend)).loss!;
      }),
    );
    total += await loss.item();
    loss.dispose();
  }
  model.train(wasTraining);
  return total / Math.max(1, batches.length);
}

/** Options of {@link sample}. */
export interface SampleOptions {
  maxNewTokens: number;
  seed: number;
  /** 0: greedy. */
  temperature: number;
  topP: number;
}

/** A continuation of `prompt` (KV cache; seeded top-p sampling, or greedy at temperature 0), decoded. */
export async function sample(model: CausalLM, tokenizer: Tokenizer, prompt: string, o: SampleOptions): Promise<string> {
  const wasTraining = model.training;
  model.eval();
  const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
  const doSample = o.temperature > 0;
  const { sequences } = await generate(model, [ids], { maxNewTokens: o.maxNewTokens, seed: o.seed, doSample, ...(doSample ? { temperature: o.temperature, topP: o.topP } : {}) });
  model.train(wasTraining);
  return tokenizer.decode(sequences[0].slice(ids.length));
}
