/**
 * End-to-end check of the packed packages as a user installs them: run by `run.mjs`
 * inside a fresh project whose node_modules came from the `npm pack` tarballs.
 * Builds a tiny GPT-2, wraps it with LoRA, takes one AdamW step, quantizes a copy to
 * NF4 and runs it, then saves the adapter and reads the files back without the
 * library (plain JSON and the safetensors header layout).
 *
 *   node smoke.mjs <adapter-dir>
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GPT2LMHeadModel } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { NoAdapterError, type Tensor, getBackendName, init, manualSeed, noGrad, tensor } from '@webpeft/tensor';

const adapterDir = process.argv[2];
if (!adapterDir) throw new Error('usage: node smoke.mjs <adapter-dir>');

/** Throws `message` unless `ok`: every check names what it saw. */
function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(`pack smoke: ${message}`);
}

// In CI the WebGPU adapter (Dawn on lavapipe) must exist; elsewhere the cpu backend
// still checks the packages' wiring.
const requireGpu = process.env.CI === 'true' || process.env.CI === '1';
try {
  await init();
} catch (e) {
  if (requireGpu || !(e instanceof NoAdapterError)) throw e;
  console.log(`no WebGPU adapter (${(e).message}); using the cpu backend`);
  await init({ backend: 'cpu' });
}
console.log(`backend: ${getBackendName()}`);

// No dropout, so the losses before and after the step (and the two models) compare exactly.
const config = { n_embd: 32, n_layer: 2, n_head: 4, vocab_size: 64, n_positions: 32, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
manualSeed(7);
const model = new GPT2LMHeadModel(config);
// The copy that gets quantized: same weights, loaded through the state dict.
const copy = new GPT2LMHeadModel(config);
copy.loadStateDict(model.stateDict());

const ids = tensor(Int32Array.from({ length: 2 * 12 }, (_, i) => (i * 37 + 11) % config.vocab_size), [2, 12], { dtype: 'i32' });

const peft = getPeftModel(model, { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['c_attn'] });
console.log(peft.printTrainableParameters(() => {}));
const opt = new AdamW(peft.trainableParameters(), { lr: 1e-2, weightDecay: 0 });

const lossBefore = model.forward({ inputIds: ids, labels: ids }).loss!;
lossBefore.backward();
const report = await opt.step();
opt.zeroGrad();
const before = await lossBefore.item();
const after = await noGrad(() => model.forward({ inputIds: ids, labels: ids }).loss!).item();
check(!report.skipped, report.message);
check(Number.isFinite(before) && Number.isFinite(after), `loss is not finite: ${before} -> ${after}`);
check(before !== after, `one AdamW step left the loss at ${before}`);
console.log(`adamw step: loss ${before.toFixed(6)} -> ${after.toFixed(6)} (${after < before ? 'down' : 'up'}; ${report.message})`);

const reference = await noGrad(() => copy.forward({ inputIds: ids }).logits).data();
const { report: quantReport } = await quantizeModel(copy, { quantType: 'nf4', doubleQuant: true });
check(quantReport.layers.length > 0, 'quantizeModel replaced no layer');
const quantized: Tensor = noGrad(() => copy.forward({ inputIds: ids }).logits);
check(quantized.shape.join(',') === `2,12,${config.vocab_size}`, `quantized logits have shape [${quantized.shape}]`);
const q = await quantized.data();
let num = 0;
let den = 0;
for (let i = 0; i < q.length; i++) {
  check(Number.isFinite(q[i]), `quantized logit ${i} is ${q[i]}`);
  num += (q[i] - reference[i]) ** 2;
  den += reference[i] ** 2;
}
const relErr = Math.sqrt(num / den);
// NF4 on these random weights: a few percent of the logits' scale.
check(relErr < 0.1, `nf4 logits differ from f32 by ${relErr} (relative)`);
console.log(
  `nf4 copy: ${quantReport.layers.length} layers, ${quantReport.bytesBefore} -> ${quantReport.bytesAfter} bytes, ` +
    `logits [${quantized.shape}] relative error ${relErr.toFixed(4)}`,
);

await peft.saveAdapter(adapterDir);
const configPath = join(adapterDir, 'adapter_config.json');
const weightsPath = join(adapterDir, 'adapter_model.safetensors');
const adapterConfig = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
check(adapterConfig.peft_type === 'LORA' && adapterConfig.r === 4 && adapterConfig.lora_alpha === 8, `adapter_config.json: ${JSON.stringify(adapterConfig)}`);

// safetensors: u64 little-endian header length, a JSON header, then the raw tensor bytes.
const bytes = readFileSync(weightsPath);
const headerLen = Number(bytes.readBigUInt64LE(0));
const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
const dataLen = bytes.length - 8 - headerLen;
const names = Object.keys(header).filter((k) => k !== '__metadata__').sort();
// Hugging Face PEFT names: base_model.model.<module path>.lora_{A,B}.weight, A [r, in], B [out, r].
const expected = [0, 1].flatMap((l) => ['A', 'B'].map((ab) => `base_model.model.transformer.h.${l}.attn.c_attn.lora_${ab}.weight`));
check(JSON.stringify(names) === JSON.stringify(expected), `adapter tensors: ${names.join(', ')}`);
for (const name of names) {
  const { dtype, shape, data_offsets: [start, end] } = header[name];
  const want = name.includes('lora_A') ? [4, 32] : [96, 4];
  check(dtype === 'F32' && shape.join(',') === want.join(','), `${name}: ${dtype} [${shape}], expected F32 [${want}]`);
  check(end - start === shape[0] * shape[1] * 4 && end <= dataLen, `${name}: data_offsets [${start}, ${end}] in ${dataLen} data bytes`);
}
console.log(
  `adapter: adapter_config.json (${statSync(configPath).size} bytes, peft_type ${String(adapterConfig.peft_type)}, r ${String(adapterConfig.r)}), ` +
    `adapter_model.safetensors (${bytes.length} bytes, ${names.length} tensors)`,
);
console.log('pack smoke (node): ok');
