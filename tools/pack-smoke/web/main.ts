/**
 * A browser page using all five published packages: QLoRA on a tiny LLaMA (4-bit base,
 * LoRA on top, one AdamW step) with the adapter saved to memory. `run.mjs` builds it
 * with Vite from the packed tarballs and checks that the bundle took the packages'
 * `browser` code paths (navigator.gpu, no `node:` modules, no Dawn).
 */
import { LlamaForCausalLM, memoryTarget } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { getBackendName, init, tensor } from '@webpeft/tensor';

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
  const opt = new AdamW(peft.trainableParameters(), { lr: 1e-3 });
  const ids = tensor(Int32Array.from([1, 5, 9, 2, 7, 3, 8, 4]), [1, 8], { dtype: 'i32' });
  const loss = model.forward({ inputIds: ids, labels: ids }).loss!;
  loss.backward();
  await opt.step();
  log(`loss: ${await loss.item()}`);
  const target = memoryTarget();
  await peft.saveAdapter(target);
  log(`adapter files: ${[...target.files.keys()].join(', ')}`);
}

main().then(
  () => log('done'),
  (e: unknown) => log(`error: ${String(e)}`),
);
