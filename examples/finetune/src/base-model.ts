import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type CausalLM, GPT2LMHeadModel, Tokenizer, fromPretrained, openTarget, saveSafetensors, trainByteLevelBpe } from '@webpeft/nn';
import { AdamW, cosineWithWarmup } from '@webpeft/optim';
import { type BackendName, type Tensor, manualSeed, tidy } from '@webpeft/tensor';
import { evalBatches, randomBatch } from './batches.js';
import { mobyDick, splitText } from './corpus.js';
import { ProgressBar } from './progress.js';
import { SeededRandom } from './seeded-random.js';
import { batchTensors, evaluate } from './train.js';

/** Shape of the default base model: a GPT-2 small enough to pretrain in minutes on a CPU Vulkan driver. */
export const BASE_CONFIG = {
  model_type: 'gpt2',
  n_positions: 128,
  n_embd: 128,
  n_layer: 4,
  n_head: 4,
  activation_function: 'gelu_new',
  resid_pdrop: 0,
  embd_pdrop: 0,
  attn_pdrop: 0,
  tie_word_embeddings: true,
};

/** Tokens in the default BPE vocabulary (256 bytes + merges + `<|endoftext|>`). */
export const BASE_VOCAB = 1024;

/** A loaded base model with its tokenizer. */
export interface BaseModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  built: boolean;
}

/**
 * Loads the base model from `dir` (Hugging Face layout: config.json,
 * model.safetensors, tokenizer.json), building it first when absent: a byte-level BPE
 * tokenizer trained on Moby-Dick and a GPT-2 pretrained on it for `steps` steps.
 */
export async function ensureBaseModel(dir: string, steps: number, backend: BackendName, seed: number, log: (s: string) => void): Promise<BaseModel> {
  if (!existsSync(join(dir, 'config.json'))) {
    await buildBaseModel(dir, steps, backend, seed, log);
    const loaded = await loadBase(dir, backend);
    return { ...loaded, built: true };
  }
  return { ...(await loadBase(dir, backend)), built: false };
}

async function loadBase(dir: string, backend: BackendName): Promise<Omit<BaseModel, 'built'>> {
  const { model, tokenizer } = await fromPretrained(dir, { backend });
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json next to the base model; delete the directory to rebuild it`);
  return { model, tokenizer };
}

async function buildBaseModel(dir: string, steps: number, backend: BackendName, seed: number, log: (s: string) => void): Promise<void> {
  log(`Building the base model in ${dir} (first run only).`);
  const corpus = mobyDick();
  const { train, eval: held } = splitText(corpus.text, 0.05);
  const t0 = Date.now();
  const tokenizerJson = trainByteLevelBpe(train.slice(0, 300_000), BASE_VOCAB, { specialTokens: ['<|endoftext|>'] });
  const tokenizer = Tokenizer.fromJSON(tokenizerJson);
  log(`  tokenizer: byte-level BPE, ${tokenizer.vocabSize} tokens (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  const trainIds = Int32Array.from(tokenizer.encode(train, { addSpecialTokens: false }));
  const evalIds = Int32Array.from(tokenizer.encode(held, { addSpecialTokens: false }));
  const config = { ...BASE_CONFIG, vocab_size: tokenizer.vocabSize, eos_token_id: tokenizer.eosTokenId, bos_token_id: tokenizer.eosTokenId };
  manualSeed(seed);
  const model = new GPT2LMHeadModel(config, { backend });
  model.train();
  log(`  model: GPT-2, ${model.numParameters().toLocaleString('en-US')} parameters; pretraining on ${corpus.name} (${trainIds.length.toLocaleString('en-US')} tokens)`);
  const optimizer = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });
  const schedule = cosineWithWarmup(optimizer, { warmupSteps: 20, totalSteps: steps });
  const rng = new SeededRandom(seed + 1);
  const evalSet = evalBatches(evalIds, 8, 64, 4);
  log(`  eval loss before: ${(await evaluate(model, evalSet, backend)).toFixed(3)}`);
  const bar = new ProgressBar('  pretrain', steps);
  let last = NaN;
  for (let step = 1; step <= steps; step++) {
    const loss: Tensor = tidy(() => {
      const { inputIds, labels } = batchTensors(randomBatch(trainIds, 8, 64, rng), backend);
      const l = model.forward({ inputIds, labels }).loss!;
      l.backward();
      return l;
    });
    await optimizer.step();
    schedule.step();
    optimizer.zeroGrad();
    if (step % 10 === 0 || step === steps) last = await loss.item();
    loss.dispose();
    bar.update(step, Number.isNaN(last) ? '' : `loss ${last.toFixed(3)}`);
  }
  log(`  eval loss after: ${(await evaluate(model, evalSet, backend)).toFixed(3)}`);
  const target = openTarget(dir);
  const weights = new Map(model.stateDict());
  // Tied output embedding: saved once, as Hugging Face GPT-2 checkpoints do.
  if (config.tie_word_embeddings) weights.delete('lm_head.weight');
  await saveSafetensors(target, 'model.safetensors', weights, { format: 'pt' });
  await target.writeText('config.json', `${JSON.stringify({ architectures: ['GPT2LMHeadModel'], ...config }, null, 2)}\n`);
  await target.writeText('tokenizer.json', JSON.stringify(tokenizerJson));
  model.dispose();
}
