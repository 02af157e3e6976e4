/**
 * A browser page using every published package: QLoRA on a tiny LLaMA (4-bit base,
 * LoRA on top, one AdamW step) with the adapter and a trainer checkpoint saved to memory. `run.mjs` builds it
 * with Vite from the packed tarballs and checks that the bundle took the packages'
 * `browser` code paths (navigator.gpu, no `node:` modules, no Dawn).
 */
import { LlamaForCausalLM, memoryTarget } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { getBackendName, init, tensor } from '@webpeft/tensor';
import { memoryCheckpointStore, saveCheckpoint, trainableWeights } from '@webpeft/trainer';

const out = document.querySelector<HTMLPreElement>('#out')!;
const log = (line: string): void => {
  out.textContent += `\n${line}`;
};

async function main(): Promise<void> {
  await init();
  log(`backend: ${getBackendName()}`);
  const model = new LlamaForCausalLM({ vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 });
  const { report } = await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
  log(`nf4: ${report.layers.length} layers`);
  const peft = getPeftModel(model, { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: 'all-linear' });
  log(peft.printTrainableParameters(() => {}));
  const weights = trainableWeights(model); // the LoRA tensors by name
  const opt = new AdamW([{ params: [...weights.values()], names: [...weights.keys()] }], { lr: 1e-3 });
  const ids = tensor(Int32Array.from([1, 5, 9, 2, 7, 3, 8, 4]), [1, 8], { dtype: 'i32' });
  const loss = model.forward({ inputIds: ids, labels: ids }).loss!;
  loss.backward();
  await opt.step();
  log(`loss: ${await loss.item()}`);
  const target = memoryTarget();
  await peft.saveAdapter(target);
  log(`adapter files: ${[...target.files.keys()].join(', ')}`);
  const manifest = await saveCheckpoint(memoryCheckpointStore(), 'checkpoint-1', { weights, optimizer: opt, step: 1 });
  log(`checkpoint files: ${Object.keys(manifest.files).join(', ')}`);
}

main().then(
  () => log('done'),
  (e: unknown) => log(`error: ${String(e)}`),
);
