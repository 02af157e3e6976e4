/**
 * The main job: load a pretrained causal LM (by default the embedded
 * @webpeft/default-model, a small LLaMA that has read Moby-Dick), fine-tune it on State
 * of the Union addresses with QLoRA (or full, LoRA, DoRA, IA3), show that it learned
 * (held-out loss, perplexity, samples before and after from the same prompt and seed),
 * and save the adapter in Hugging Face PEFT's format.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { type CausalLM, fromPretrained, openTarget, saveSafetensors } from '@webpeft/nn';
import { AdamW, type LambdaLr, constantSchedule, cosineWithWarmup, linearWithWarmup } from '@webpeft/optim';
import { ALL_LINEAR, type IA3Config, type LoraConfig, type PeftModel, allLinearTargets, getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { type BackendName, type Tensor, getBackend, init, manualSeed, memory, mul, resetPeakMemory, setBackend, tidy } from '@webpeft/tensor';
import { evalBatches, randomBatch } from './batches.js';
import { splitText, stateOfTheUnion } from './corpus.js';
import { type FinetuneOptions, parseOptions } from './options.js';
import { ProgressBar, type ProgressOutput } from './progress.js';
import { SeededRandom } from './seeded-random.js';
import { batchTensors, evaluate, sample } from './train.js';

/** Where {@link runFinetune} prints: report lines, and the progress bar. */
export interface RunOutput {
  log: (line: string) => void;
  progress: ProgressOutput;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const count = (n: number) => n.toLocaleString('en-US');

/**
 * Runs the fine-tuning CLI on `argv` (flags without node and script). Every option is
 * validated before anything is loaded: a bad one throws `OptionError` having printed nothing.
 */
export async function runFinetune(argv: string[], out: RunOutput = { log: (s) => console.log(s), progress: process.stderr }): Promise<void> {
  const started = Date.now();
  const log = out.log;
  const opts = parseOptions(argv, log);
  if (opts === null) return;
  await useBackend(opts.backend);
  const adapter = (getBackend() as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  log(`WebPEFT fine-tuning: method ${opts.method}, backend ${opts.backend}${adapter ? ` (${adapter.vendor} ${adapter.architecture} ${adapter.description})`.trimEnd() : ''}`);

  const t0 = Date.now();
  const source = opts.model ?? DEFAULT_MODEL_URL;
  // Full fine-tuning keeps f32 weights ('auto' resolves to f32 there; options refuse f16).
  const dtype = opts.method === 'full' ? 'f32' : opts.dtype;
  const { model, tokenizer, rawConfig } = await fromPretrained(source, { backend: opts.backend, dtype });
  if (!tokenizer) throw new Error(`${opts.model}: no tokenizer.json next to the model`);
  const params = model.numParameters();
  log(`Model: ${opts.model ?? '@webpeft/default-model'} (${String(rawConfig.model_type)}, ${count(params)} parameters, ${mib(params * (model.parameters()[0]?.dtype === 'f16' ? 2 : 4))} as ${model.parameters()[0]?.dtype ?? 'f32'}), loaded in ${((Date.now() - t0) / 1000).toFixed(1)}s`);

  const corpus = stateOfTheUnion(1990, 2010, opts.corpusChars);
  const { train, eval: held } = splitText(corpus.text, 0.1);
  const trainIds = Int32Array.from(tokenizer.encode(train, { addSpecialTokens: false }));
  const evalIds = Int32Array.from(tokenizer.encode(held, { addSpecialTokens: false }));
  const evalSet = evalBatches(evalIds, opts.batch, opts.seqLen, opts.evalBatches);
  log(`Data: ${corpus.name}, ${count(trainIds.length)} training tokens, ${count(evalSet.length * opts.batch * opts.seqLen)} held-out tokens`);

  const sampling = { maxNewTokens: opts.maxNewTokens, seed: opts.seed, temperature: opts.temperature, topP: opts.topP };
  const before = await sample(model, tokenizer, opts.prompt, sampling);
  const evalBefore = await evaluate(model, evalSet, opts.backend);
  log(`Sample before: ${JSON.stringify(opts.prompt + before)}`);

  manualSeed(opts.seed);
  const peft = await attachMethod(model, opts, log);
  const trainable: CausalLM = peft ? (peft.model as CausalLM) : model;
  const trainableParams = (peft ?? model).trainableParameters();
  const trainableCount = trainableParams.reduce((n, p) => n + p.size, 0);
  const all = peft ? peft.getNbTrainableParameters().all : params;
  log(`Trainable parameters: ${count(trainableCount)} of ${count(all)} (${((100 * trainableCount) / all).toFixed(2)}%), adapter ${mib(trainableCount * 4)} as f32`);
  trainable.train();

  const optimizer = new AdamW(trainableParams, { lr: opts.lr, weightDecay: 0, nonFinite: opts.nonFinite, onWarning: (message) => log(`  warning: ${message}`) });
  const schedule = makeSchedule(optimizer, opts);
  const rng = new SeededRandom(opts.seed + 7);
  const bar = new ProgressBar('train', opts.steps, out.progress);
  resetPeakMemory();
  const tTrain = Date.now();
  for (let step = 1; step <= opts.steps; step++) {
    let stepLoss = 0;
    for (let micro = 0; micro < opts.gradAccum; micro++) {
      const loss: Tensor = tidy(() => {
        const { inputIds, labels } = batchTensors(randomBatch(trainIds, opts.batch, opts.seqLen, rng), opts.backend);
        const l = trainable.forward({ inputIds, labels }).loss!;
        // Mean over the accumulated micro-batches: each contributes 1/k of the gradient.
        (opts.gradAccum > 1 ? mul(l, 1 / opts.gradAccum) : l).backward();
        return l;
      });
      stepLoss += (await loss.item()) / opts.gradAccum;
      loss.dispose();
    }
    await optimizer.step();
    schedule.step();
    optimizer.zeroGrad();
    bar.update(step, `loss ${stepLoss.toFixed(3)}`);
    if (opts.evalEvery > 0 && step % opts.evalEvery === 0 && step !== opts.steps) {
      log(`  step ${step}: eval loss ${(await evaluate(trainable, evalSet, opts.backend)).toFixed(4)}`);
    }
  }
  const seconds = (Date.now() - tTrain) / 1000;
  const peak = memory();
  const evalAfter = await evaluate(trainable, evalSet, opts.backend);
  const after = await sample(trainable, tokenizer, opts.prompt, sampling);
  const tokens = opts.steps * opts.gradAccum * opts.batch * opts.seqLen;
  log(`Sample after: ${JSON.stringify(opts.prompt + after)}`);
  log(`Eval loss: ${evalBefore.toFixed(4)} -> ${evalAfter.toFixed(4)} (${((100 * (evalAfter - evalBefore)) / evalBefore).toFixed(1)}%)`);
  log(`Perplexity: ${Math.exp(evalBefore).toFixed(1)} -> ${Math.exp(evalAfter).toFixed(1)}`);
  log(`Trained ${opts.steps} steps (${count(tokens)} tokens) in ${seconds.toFixed(1)}s: ${(tokens / seconds).toFixed(0)} tokens/s`);
  const tags = Object.entries(peak.peakBytesByTag).filter(([, b]) => b > 0);
  log(`Peak memory while training: ${mib(peak.peakBytes)}; by tag: ${tags.map(([t, b]) => `${t} ${mib(b)}`).join(', ')}`);

  try {
    await save(peft, model, opts, log);
  } finally {
    optimizer.disposeState();
    (peft ?? model).dispose();
  }
  log(`Done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}

async function save(peft: PeftModel | null, model: CausalLM, opts: FinetuneOptions, log: (line: string) => void): Promise<void> {
  if (peft) {
    await peft.saveAdapter(opts.out);
    const file = join(opts.out, 'adapter_model.safetensors');
    log(`Adapter saved in PEFT format to ${opts.out}/ (adapter_config.json, adapter_model.safetensors ${mib(statSync(file).size)})`);
  } else {
    await saveSafetensors(openTarget(opts.out), 'model.safetensors', model.stateDict(), { format: 'pt' });
    log(`Model weights saved to ${opts.out}/model.safetensors (${mib(statSync(join(opts.out, 'model.safetensors')).size)})`);
  }
}

/** Quantizes (qlora) and wraps the model in the chosen tuner; null for full fine-tuning. */
async function attachMethod(model: CausalLM, opts: FinetuneOptions, log: (line: string) => void): Promise<PeftModel | null> {
  if (opts.method === 'full') return null;
  if (opts.method === 'qlora') {
    // The NF4 base computes in the model's dtype (f16 with --dtype f16 / auto on an f16 adapter).
    const computeDtype = model.parameters()[0]?.dtype === 'f16' ? 'f16' : 'f32';
    const { report } = await quantizeModel(model, { quantType: 'nf4', doubleQuant: true, computeDtype });
    log(`Quantized ${report.layers.length} linear layers to NF4 + double quant: ${mib(report.bytesBefore)} -> ${mib(report.bytesAfter)}`);
  }
  const explicit = opts.targets.join(',') !== 'all-linear,lm_head';
  if (opts.method === 'ia3') {
    // IA3 has its own per-family targets and feed-forward layers, used unless --targets is given.
    const ia3: IA3Config = { peftType: 'IA3', ...(explicit ? { targetModules: targetNames(model, opts.targets) } : {}) };
    return getPeftModel(model, ia3);
  }
  const lora: LoraConfig = { peftType: 'LORA', r: opts.rank, loraAlpha: opts.alpha, loraDropout: opts.dropout, targetModules: targetNames(model, opts.targets), useDora: opts.method === 'dora' };
  return getPeftModel(model, lora);
}

/**
 * Module names for `targetModules`: `all-linear` expanded to the model's linear layers
 * (PEFT's rule: all but the output head), so it combines with names such as `lm_head`.
 * Adapting the output head lets a small model move its word distribution to the new corpus fast.
 */
function targetNames(model: CausalLM, targets: string[]): string[] | string {
  if (targets.length === 1 && targets[0] === ALL_LINEAR) return ALL_LINEAR;
  const names = new Set<string>();
  for (const t of targets) for (const n of t === ALL_LINEAR ? allLinearTargets(model, () => false) : [t]) names.add(n);
  return [...names];
}

/**
 * Makes `name` the current backend, initialising it only when this process has not:
 * a second `init` replaces the backend, and what was cached on the first one is orphaned.
 */
async function useBackend(name: BackendName): Promise<void> {
  try {
    memory(name); // throws while `name` is not initialised
  } catch {
    await init({ backend: name });
  }
  setBackend(name);
}

function makeSchedule(optimizer: AdamW, opts: FinetuneOptions): LambdaLr {
  const warm = { warmupSteps: opts.warmup };
  if (opts.schedule === 'constant') return constantSchedule(optimizer, warm);
  if (opts.schedule === 'linear') return linearWithWarmup(optimizer, { ...warm, totalSteps: opts.steps });
  return cosineWithWarmup(optimizer, { ...warm, totalSteps: opts.steps });
}
