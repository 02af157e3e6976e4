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
import { type CausalLM, type DownloadProgress, Linear, fromPretrained, openTarget, positionLimit, resolveModelDtype, saveSafetensors } from '@webpeft/nn';
import { AdamW, type LambdaLr, constantSchedule, cosineWithWarmup, linearWithWarmup } from '@webpeft/optim';
import { ALL_LINEAR, type IA3Config, type LoraConfig, type PeftModel, PromptLearningModel, allLinearTargets, getPeftModel } from '@webpeft/peft';
import { Linear4bit, quantizeModel, quantizeOnLoad } from '@webpeft/quant';
import { BYTES_PER_ELEMENT, type BackendName, type Tensor, getBackend, init, manualSeed, memory, mul, resetPeakMemory, setBackend, tidy } from '@webpeft/tensor';
import { type TokenBatch, evalBatches, randomBatch } from './batches.js';
import { BOTTLENECK_METHODS, isBottleneckMethod } from './bottleneck-methods.js';
import { mergeAndExport } from './export.js';
import { mergeAdapters } from './merge-run.js';
import { splitText, stateOfTheUnion } from './corpus.js';
import { type DataStream, checkpointDir, restoreRun, saveRunCheckpoint, windowPosition } from './checkpointing.js';
import { type FinetuneOptions, OptionError, parseOptions } from './options.js';
import { preflight } from './preflight.js';
import { isPromptMethod, promptMethodConfig } from './prompt-methods.js';
import { ProgressBar, type ProgressOutput } from './progress.js';
import { SeededRandom } from './seeded-random.js';
import { prepareSftData, readSftFile } from './sft-data.js';
import { batchTensors, evaluate, sample } from './train.js';

/** Where {@link runFinetune} prints: report lines, and the progress bar. */
export interface RunOutput {
  log: (line: string) => void;
  progress: ProgressOutput;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const count = (n: number) => n.toLocaleString('en-US');

/** What a finished run did (for tests and callers): the loss of each step it trained. */
export interface FinetuneResult {
  /** Total optimizer steps of the run (from `--steps`, or computed from `--epochs`). */
  steps: number;
  /** The step the run started after: 0, or the step of the `--resume` checkpoint. */
  startStep: number;
  /** Mean training loss of steps `startStep + 1 .. steps`, in order. */
  losses: number[];
}

/**
 * Runs the fine-tuning CLI on `argv` (flags without node and script). Every option and
 * output location is validated before anything is loaded: a bad one throws
 * `OptionError` having printed nothing. Returns null for `--help`.
 */
export async function runFinetune(argv: string[], out: RunOutput = { log: (s) => console.log(s), progress: process.stderr }): Promise<FinetuneResult | null> {
  const started = Date.now();
  const log = out.log;
  const opts = parseOptions(argv, log);
  if (opts === null) return null;
  const plan = await preflight(opts);
  // A malformed --data file fails here, before a model is loaded.
  const sftFile = opts.data === null ? null : readSftFile(opts.data, opts.chatTemplate, opts.completionOnly);
  await useBackend(opts.backend);
  const adapter = (getBackend() as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  log(`WebPEFT fine-tuning: method ${opts.method}, backend ${opts.backend}${adapter ? ` (${adapter.vendor} ${adapter.architecture} ${adapter.description})`.trimEnd() : ''}`);

  const t0 = Date.now();
  const source = opts.model ?? DEFAULT_MODEL_URL;
  // Full fine-tuning keeps f32 weights ('auto' resolves to f32 there; options refuse f16).
  const dtype = opts.method === 'full' ? 'f32' : opts.dtype;
  // A Hub repo id or URL is downloaded once into the cache; each file is reported when complete.
  const onProgress = (p: DownloadProgress) => p.done && log(`  downloaded ${p.file} (${mib(p.loaded)})`);
  // QLoRA quantizes while loading: each linear weight goes to NF4 before the next is read, so
  // the full-precision model never exists on the device. The NF4 base computes in the model's dtype.
  const quantize = opts.method === 'qlora' && !rewritesBaseWeights(opts) ? quantizeOnLoad({ quantType: 'nf4', doubleQuant: true, computeDtype: resolveModelDtype(dtype, opts.backend) }) : undefined;
  const { model, tokenizer, rawConfig, source: files } = await fromPretrained(source, { backend: opts.backend, dtype, onProgress, quantize, attnImplementation: opts.attn });
  if (!tokenizer) throw new Error(`${opts.model}: no tokenizer.json next to the model`);
  const limit = positionLimit(rawConfig);
  if (isPromptMethod(opts.method) && limit && opts.numVirtualTokens + opts.seqLen > limit.value) {
    model.dispose();
    throw new OptionError(`--num-virtual-tokens ${opts.numVirtualTokens} + --seq-len ${opts.seqLen} exceeds the model's ${limit.field} (${limit.value})`);
  }
  const params = model.numParameters();
  log(`Model: ${opts.model ?? '@webpeft/default-model'} (${String(rawConfig.model_type)}, ${count(params)} parameters, ${mib(params * (model.parameters()[0]?.dtype === 'f16' ? 2 : 4))} as ${model.parameters()[0]?.dtype ?? 'f32'}), loaded in ${((Date.now() - t0) / 1000).toFixed(1)}s`);

  const rng = new SeededRandom(opts.seed + 7);
  let nextBatch: () => TokenBatch;
  let evalSet: TokenBatch[];
  // Where the data stream stands, saved with checkpoints; micro-batches per pass over the data, for --epochs.
  let stream: DataStream;
  if (sftFile) {
    const data = prepareSftData(sftFile, tokenizer, opts);
    for (const w of data.warnings) log(`  warning: ${w}`);
    ({ evalSet } = data);
    nextBatch = () => data.sampler.next();
    stream = { perEpoch: data.sampler.batchesPerEpoch, position: data.sampler };
    log(`Data: ${data.summary}`);
  } else {
    const corpus = stateOfTheUnion(1990, 2010, opts.corpusChars);
    const { train, eval: held } = splitText(corpus.text, 0.1);
    const trainIds = Int32Array.from(tokenizer.encode(train, { addSpecialTokens: false }));
    const evalIds = Int32Array.from(tokenizer.encode(held, { addSpecialTokens: false }));
    evalSet = evalBatches(evalIds, opts.batch, opts.seqLen, opts.evalBatches);
    nextBatch = () => randomBatch(trainIds, opts.batch, opts.seqLen, rng);
    stream = { perEpoch: trainIds.length / (opts.batch * opts.seqLen), position: windowPosition(rng) };
    log(`Data: ${corpus.name}, ${count(trainIds.length)} training tokens, ${count(evalSet.length * opts.batch * opts.seqLen)} held-out tokens`);
  }
  const steps = opts.epochs === null ? opts.steps : Math.max(1, Math.ceil((opts.epochs * stream.perEpoch) / opts.gradAccum));
  if (opts.warmup > steps) throw new OptionError(`--warmup must be at most the run's steps (${steps}, from --epochs ${opts.epochs}), got ${opts.warmup}`);

  const sampling = { maxNewTokens: opts.maxNewTokens, seed: opts.seed, temperature: opts.temperature, topP: opts.topP };
  const before = await sample(model, tokenizer, opts.prompt, sampling);
  const evalBefore = await evaluate(model, evalSet, opts.backend);
  log(`Sample before: ${JSON.stringify(opts.prompt + before)}`);
  if (opts.merge) {
    log(`Merging ${opts.merge.adapters.length} adapters (base eval loss ${evalBefore.toFixed(4)}):`);
    let merged: PeftModel;
    try {
      merged = await mergeAdapters(model, opts.merge, { opts, evalSet, tokenizer, sampling, evalBefore, log });
    } catch (e) {
      model.dispose();
      throw e;
    }
    try {
      await save(merged, model, opts, log);
      if (opts.mergeAndExport !== null) {
        const bytes = await mergeAndExport(merged, model, opts.method, opts.mergeAndExport, { config: rawConfig, source: files });
        log(`Merged model exported as a Hugging Face checkpoint to ${opts.mergeAndExport}/ (config.json, model.safetensors ${mib(bytes)})`);
      }
    } finally {
      merged.dispose();
    }
    log(`Done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return { steps: 0, startStep: 0, losses: [] };
  }

  manualSeed(opts.seed);
  const peft = await attachMethod(model, opts, log);
  // A prompt-learning model is itself the causal LM that trains and generates.
  const trainable: CausalLM = peft instanceof PromptLearningModel ? peft : peft ? (peft.model as CausalLM) : model;
  const trainableParams = (peft ?? model).trainableParameters();
  const trainableCount = trainableParams.reduce((n, p) => n + p.size, 0);
  const all = peft ? peft.getNbTrainableParameters().all : params;
  log(`Trainable parameters: ${count(trainableCount)} of ${count(all)} (${((100 * trainableCount) / all).toFixed(2)}%), adapter ${mib(trainableCount * 4)} as f32`);
  trainable.train();
  if (opts.fusedCe) {
    // The fused loss reads the head's weight: an adapter on lm_head would be bypassed.
    const head = (model as unknown as { lm_head?: object }).lm_head;
    if (!(head instanceof Linear)) {
      // Free what this run built before reporting it.
      (peft ?? model).dispose();
      throw new OptionError(`--fused-ce needs a plain Linear lm_head, but with --method ${opts.method} it is a ${head?.constructor.name ?? 'missing module'}: leave lm_head out of --targets`);
    }
    model.fusedCrossEntropy = true;
    log('Fused cross-entropy: on (the loss over vocabulary chunks, no logits)');
  }
  if (opts.attn === 'fused') log('Attention: fused (memory-efficient kernels, no [B, H, T, L] scores stored)');
  if (opts.gradientCheckpointing) {
    trainable.gradientCheckpointingEnable();
    log('Gradient checkpointing: on (each decoder layer keeps only its input and is recomputed in backward)');
  }

  // Named groups: the optimizer state in a checkpoint is keyed by the parameters' names.
  const names = (peft ?? model).namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  const optimizer = new AdamW([{ params: trainableParams, names }], { lr: opts.lr, weightDecay: 0, nonFinite: opts.nonFinite, onWarning: (message) => log(`  warning: ${message}`) });
  const schedule = makeSchedule(optimizer, opts, steps);
  let startStep = 0;
  if (plan.resume) {
    try {
      startStep = await restoreRun(plan.resume.dir, { trainable: peft ?? model, optimizer, scheduler: schedule, data: stream.position });
    } catch (e) {
      // A refused checkpoint changed nothing; free what this run built before reporting it.
      optimizer.disposeState();
      (peft ?? model).dispose();
      throw e;
    }
    log(`Resumed from ${plan.resume.dir} after step ${startStep} of ${steps}`);
  }
  const losses: number[] = [];
  const bar = new ProgressBar('train', steps, out.progress);
  resetPeakMemory();
  const tTrain = Date.now();
  let tokens = 0;
  for (let step = startStep + 1; step <= steps; step++) {
    let stepLoss = 0;
    for (let micro = 0; micro < opts.gradAccum; micro++) {
      const loss: Tensor = tidy(() => {
        const batch = nextBatch();
        tokens += batch.batchSize * batch.seqLen;
        const l = trainable.forward(batchTensors(batch, opts.backend)).loss!;
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
    losses.push(stepLoss);
    bar.update(step, `loss ${stepLoss.toFixed(3)}`);
    if (opts.saveEvery > 0 && step % opts.saveEvery === 0) {
      const epoch = (step * opts.gradAccum) / stream.perEpoch;
      await saveRunCheckpoint(opts, { trainable: peft ?? model, optimizer, scheduler: schedule, data: stream.position, step, epoch });
      log(`  step ${step}: checkpoint saved to ${checkpointDir(opts.out, step)}/`);
    }
    if (opts.evalEvery > 0 && step % opts.evalEvery === 0 && step !== steps) {
      log(`  step ${step}: eval loss ${(await evaluate(trainable, evalSet, opts.backend)).toFixed(4)}`);
    }
  }
  const seconds = (Date.now() - tTrain) / 1000;
  const peak = memory();
  const evalAfter = await evaluate(trainable, evalSet, opts.backend);
  const after = await sample(trainable, tokenizer, opts.prompt, sampling);
  log(`Sample after: ${JSON.stringify(opts.prompt + after)}`);
  log(`Eval loss: ${evalBefore.toFixed(4)} -> ${evalAfter.toFixed(4)} (${((100 * (evalAfter - evalBefore)) / evalBefore).toFixed(1)}%)`);
  log(`Perplexity: ${Math.exp(evalBefore).toFixed(1)} -> ${Math.exp(evalAfter).toFixed(1)}`);
  log(`Trained ${steps - startStep} steps (${count(tokens)} tokens) in ${seconds.toFixed(1)}s: ${(tokens / Math.max(seconds, 1e-3)).toFixed(0)} tokens/s`);
  const tags = Object.entries(peak.peakBytesByTag).filter(([, b]) => b > 0);
  log(`Peak memory while training: ${mib(peak.peakBytes)}; by tag: ${tags.map(([t, b]) => `${t} ${mib(b)}`).join(', ')}`);

  try {
    await save(peft, model, opts, log);
    if (opts.mergeAndExport !== null) {
      // Options refuse --merge-and-export for prompt-learning methods: they have nothing to fold in.
      if (peft instanceof PromptLearningModel) throw new Error(`--merge-and-export: method '${opts.method}' cannot be merged`);
      const bytes = await mergeAndExport(peft, model, opts.method, opts.mergeAndExport, { config: rawConfig, source: files });
      log(`Merged model exported as a Hugging Face checkpoint to ${opts.mergeAndExport}/ (config.json, model.safetensors ${mib(bytes)})`);
    }
  } finally {
    optimizer.disposeState();
    (peft ?? model).dispose();
  }
  log(`Done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return { steps, startStep, losses };
}

async function save(peft: PeftModel | PromptLearningModel | null, model: CausalLM, opts: FinetuneOptions, log: (line: string) => void): Promise<void> {
  if (peft) {
    await peft.saveAdapter(opts.out);
    const file = join(opts.out, 'adapter_model.safetensors');
    log(`Adapter saved in PEFT format to ${opts.out}/ (adapter_config.json, adapter_model.safetensors ${mib(statSync(file).size)})`);
  } else {
    await saveSafetensors(openTarget(opts.out), 'model.safetensors', model.stateDict(), { format: 'pt' });
    log(`Model weights saved to ${opts.out}/model.safetensors (${mib(statSync(join(opts.out, 'model.safetensors')).size)})`);
  }
}

/** Quantizes (qlora) and wraps the model in the chosen tuner or prompt-learning method; null for full fine-tuning. */
async function attachMethod(model: CausalLM, opts: FinetuneOptions, log: (line: string) => void): Promise<PeftModel | PromptLearningModel | null> {
  if (opts.method === 'full') return null;
  if (isPromptMethod(opts.method)) return getPeftModel(model, promptMethodConfig(opts.method, opts.numVirtualTokens, opts.encoder));
  // PiSSA and LoftQ rewrite the base weight from its full-precision values: QLoRA quantizes after them.
  const rewritesBase = rewritesBaseWeights(opts);
  if (opts.method === 'qlora' && !rewritesBase) {
    // Quantized by fromPretrained (quantizeOnLoad); report what it stored.
    const layers = model.modules().filter((m): m is Linear4bit => m instanceof Linear4bit);
    const bytes = (t: Tensor) => t.size * BYTES_PER_ELEMENT[t.dtype];
    const before = layers.reduce((n, q) => n + q.inFeatures * q.outFeatures * BYTES_PER_ELEMENT[model.getInputEmbeddings().weight.dtype], 0);
    const after = layers.reduce((n, q) => n + bytes(q.packedWeight) + q.quantState.ownedTensors().reduce((m, t) => m + bytes(t), 0), 0);
    log(`Quantized ${layers.length} linear layers to NF4 + double quant: ${mib(before)} -> ${mib(after)}`);
  }
  const explicit = opts.targets.join(',') !== 'all-linear,lm_head';
  if (isBottleneckMethod(opts.method)) return getPeftModel(model, BOTTLENECK_METHODS[opts.method]);
  if (opts.method === 'ia3') {
    // IA3 has its own per-family targets and feed-forward layers, used unless --targets is given.
    const ia3: IA3Config = { peftType: 'IA3', ...(explicit ? { targetModules: targetNames(model, opts.targets) } : {}) };
    return getPeftModel(model, ia3);
  }
  let targetModules = targetNames(model, opts.targets);
  if (rewritesBase && Array.isArray(targetModules) && targetModules.includes('lm_head') && sharesEmbedding(model)) {
    // Rewriting a tied head's weight would rewrite the input embeddings with it.
    targetModules = targetModules.filter((t) => t !== 'lm_head');
    log(`lm_head is tied to the input embeddings: ${opts.initLoraWeights} would rewrite both, so it gets no adapter`);
  }
  const lora: LoraConfig = { peftType: 'LORA', r: opts.rank, loraAlpha: opts.alpha, loraDropout: opts.dropout, targetModules, useDora: opts.method === 'dora', ...loraInit(opts) };
  const peft = getPeftModel(model, lora);
  if (rewritesBase) {
    const layers = await peft.initLoraFromBase();
    log(`Initialised ${layers.length} LoRA layers with ${opts.initLoraWeights} (base weights rewritten)`);
    // LoftQ's base already sits on NF4's grid without double quantization: keep that grid.
    if (opts.method === 'qlora') await quantizeForQlora(model, opts.initLoraWeights !== 'loftq', log);
  }
  return peft;
}

/** PiSSA, OLoRA and LoftQ initialise from the full-precision base, so QLoRA quantizes after them, not while loading. */
function rewritesBaseWeights(opts: FinetuneOptions): boolean {
  return /^(pissa|olora|loftq)/.test(opts.initLoraWeights);
}

/** True when the output head's weight is the input embedding table (tied embeddings). */
function sharesEmbedding(model: CausalLM): boolean {
  const head = model.namedModules().find(([path]) => path === 'lm_head')?.[1] as { weight?: unknown } | undefined;
  return head?.weight !== undefined && head.weight === model.getInputEmbeddings().weight;
}

/** `--init-lora-weights` as LoRA config fields. */
function loraInit(opts: FinetuneOptions): Pick<LoraConfig, 'initLoraWeights' | 'loftqConfig'> {
  if (opts.initLoraWeights === 'default') return {};
  if (opts.initLoraWeights === 'loftq') return { initLoraWeights: 'loftq', loftqConfig: { loftqBits: opts.loftqBits, loftqIter: opts.loftqIter } };
  return { initLoraWeights: opts.initLoraWeights as LoraConfig['initLoraWeights'] };
}

/** QLoRA's NF4 base (computing in the model's dtype: f16 with --dtype f16 / auto on an f16 adapter). */
async function quantizeForQlora(model: CausalLM, doubleQuant: boolean, log: (line: string) => void): Promise<void> {
  const computeDtype = model.parameters()[0]?.dtype === 'f16' ? 'f16' : 'f32';
  // After LoRA wraps the head its linear sits at lm_head.base_layer: keep it full precision either way.
  const { report } = await quantizeModel(model, { quantType: 'nf4', doubleQuant, computeDtype, skip: ['lm_head', 'lm_head.base_layer'] });
  log(`Quantized ${report.layers.length} linear layers to NF4${doubleQuant ? ' + double quant' : ''}: ${mib(report.bytesBefore)} -> ${mib(report.bytesAfter)}`);
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

function makeSchedule(optimizer: AdamW, opts: FinetuneOptions, steps: number): LambdaLr {
  const warm = { warmupSteps: opts.warmup };
  if (opts.schedule === 'constant') return constantSchedule(optimizer, warm);
  if (opts.schedule === 'linear') return linearWithWarmup(optimizer, { ...warm, totalSteps: steps });
  return cosineWithWarmup(optimizer, { ...warm, totalSteps: steps });
}
