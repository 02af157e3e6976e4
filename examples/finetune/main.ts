/**
 * The main job: fine-tune a small GPT-2 on State of the Union addresses with full
 * fine-tuning, LoRA, or QLoRA (LoRA on an NF4 double-quantized base), then save the
 * adapter in Hugging Face PEFT's format. Run: `npm run finetune -- --help`.
 */
import { type CausalLM, openTarget, saveSafetensors } from '@webpeft/nn';
import { AdamW, cosineWithWarmup } from '@webpeft/optim';
import { type LoraConfig, type PeftModel, getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { type Tensor, getBackend, init, manualSeed, memory, tidy } from '@webpeft/tensor';
import { ensureBaseModel } from './src/base-model.js';
import { evalBatches, randomBatch } from './src/batches.js';
import { splitText, stateOfTheUnion } from './src/corpus.js';
import { parseOptions } from './src/options.js';
import { ProgressBar } from './src/progress.js';
import { SeededRandom } from './src/seeded-random.js';
import { batchTensors, evaluate, sample } from './src/train.js';

const log = (s: string) => console.log(s);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  await init({ backend: opts.backend });
  const adapter = (getBackend() as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  log(`WebPEFT fine-tuning: method ${opts.method}, backend ${opts.backend}${adapter ? ` (${adapter.vendor} ${adapter.architecture} ${adapter.description})`.trimEnd() : ''}`);

  const { model, tokenizer } = await ensureBaseModel(opts.baseDir, opts.baseSteps, opts.backend, opts.seed, log);
  const corpus = stateOfTheUnion(1990, 2010, opts.corpusChars);
  const { train, eval: held } = splitText(corpus.text, 0.1);
  const trainIds = Int32Array.from(tokenizer.encode(train, { addSpecialTokens: false }));
  const evalIds = Int32Array.from(tokenizer.encode(held, { addSpecialTokens: false }));
  const evalSet = evalBatches(evalIds, opts.batchSize, opts.seqLen, opts.evalBatches);
  log(`Corpus: ${corpus.name}, ${trainIds.length.toLocaleString('en-US')} training tokens, ${evalSet.length} eval batches`);

  const before = await sample(model, tokenizer, opts.prompt, opts.maxNewTokens, opts.seed);
  const evalBefore = await evaluate(model, evalSet, opts.backend);
  log(`\nSample before: ${JSON.stringify(opts.prompt + before)}`);
  log(`Eval loss before: ${evalBefore.toFixed(4)}\n`);

  manualSeed(opts.seed);
  let trainable: CausalLM = model;
  let peft: PeftModel | null = null;
  if (opts.method === 'qlora') {
    const { report } = await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
    log(`Quantized ${report.layers.length} layers to NF4 + double quant: ${mib(report.bytesBefore)} -> ${mib(report.bytesAfter)}`);
  }
  if (opts.method !== 'full') {
    const lora: LoraConfig = { peftType: 'LORA', r: opts.rank, loraAlpha: opts.alpha, loraDropout: opts.dropout, targetModules: opts.targets };
    peft = getPeftModel(model, lora);
    peft.printTrainableParameters(log);
    trainable = peft.model as CausalLM;
  } else {
    log(`trainable params: ${model.numParameters({ onlyTrainable: true }).toLocaleString('en-US')} (all)`);
  }
  trainable.train();

  const params = (peft ?? model).trainableParameters();
  const optimizer = new AdamW(params, { lr: opts.lr, weightDecay: 0 });
  const schedule = cosineWithWarmup(optimizer, { warmupSteps: opts.warmupSteps, totalSteps: opts.steps });
  const rng = new SeededRandom(opts.seed + 7);
  const bar = new ProgressBar('train', opts.steps);
  const t0 = Date.now();
  let lastLoss = NaN;
  for (let step = 1; step <= opts.steps; step++) {
    const loss: Tensor = tidy(() => {
      const { inputIds, labels } = batchTensors(randomBatch(trainIds, opts.batchSize, opts.seqLen, rng), opts.backend);
      const l = trainable.forward({ inputIds, labels }).loss!;
      l.backward();
      return l;
    });
    await optimizer.step();
    schedule.step();
    optimizer.zeroGrad();
    if (step % 10 === 0 || step === opts.steps) lastLoss = await loss.item();
    loss.dispose();
    bar.update(step, Number.isNaN(lastLoss) ? '' : `loss ${lastLoss.toFixed(3)}`);
    if (opts.evalEvery > 0 && step % opts.evalEvery === 0 && step !== opts.steps) {
      log(`  step ${step}: eval loss ${(await evaluate(trainable, evalSet, opts.backend)).toFixed(4)}`);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const evalAfter = await evaluate(trainable, evalSet, opts.backend);
  const after = await sample(trainable, tokenizer, opts.prompt, opts.maxNewTokens, opts.seed);
  log(`\nTrained ${opts.steps} steps in ${seconds.toFixed(1)}s (${((opts.steps * opts.batchSize * opts.seqLen) / seconds).toFixed(0)} tokens/s)`);
  log(`Eval loss: ${evalBefore.toFixed(4)} -> ${evalAfter.toFixed(4)}`);
  log(`Sample after: ${JSON.stringify(opts.prompt + after)}`);
  const m = memory();
  log(`Device memory: peak ${mib(m.peakBytes)}; live by tag: ${Object.entries(m.bytesByTag).filter(([, b]) => b > 0).map(([t, b]) => `${t} ${mib(b)}`).join(', ')}`);

  if (peft) {
    await peft.saveAdapter(opts.out);
    log(`Adapter saved in PEFT format to ${opts.out}/ (adapter_config.json, adapter_model.safetensors)`);
  } else {
    const target = openTarget(opts.out);
    await saveSafetensors(target, 'model.safetensors', model.stateDict(), { format: 'pt' });
    log(`Model weights saved to ${opts.out}/model.safetensors`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack ?? e.message : e);
    process.exit(1);
  },
);
