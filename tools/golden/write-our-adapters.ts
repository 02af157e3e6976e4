/**
 * The first half of the reverse check (tools/golden/README.md): adapters written by OUR
 * code, for Hugging Face PEFT to load.
 *
 * For every adapter method we support, loads a golden base checkpoint (the transformers
 * checkpoints in packages/nn/src/__tests__/fixtures/models), builds the adapter with our
 * API, moves every trainable tensor off its init (as training would: LoRA's B is zero and
 * IA3's vectors are ones at init), and writes into `<out>/<case>/` our `saveAdapter`
 * output plus `case.json` with the base model name, fixed input ids and our logits for
 * them. `<out>/base/<model>/` receives each base checkpoint's files.
 * check_our_adapters.py then loads each case with PEFT's `PeftModel.from_pretrained`.
 *
 * Run (after `npx tsc -b tsconfig.json`): npx tsx tools/golden/write-our-adapters.ts <out dir>
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CausalLM, fromPretrained, openSource } from '@webpeft/nn';
import { type PeftConfig, type PromptableModel, getPeftModel } from '@webpeft/peft';
import { type Tensor, add, assign, init, manualSeed, mul, noGrad, randn, tensor } from '@webpeft/tensor';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'nn', 'src', '__tests__', 'fixtures', 'models');
type BaseName = 'gpt2' | 'llama' | 'qwen2' | 'mistral';

const LLAMA_LINEARS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** One reverse-check case: a base checkpoint and one of our adapter configs. */
const CASES: [name: string, base: BaseName, config: PeftConfig & Record<string, unknown>][] = [
  ['lora-gpt2', 'gpt2', { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj', 'c_fc', 'wte'] }],
  ['lora-llama', 'llama', { peftType: 'LORA', r: 4, loraAlpha: 16, targetModules: LLAMA_LINEARS }],
  ['lora-bias-qwen2', 'qwen2', { peftType: 'LORA', r: 2, loraAlpha: 4, targetModules: ['q_proj', 'k_proj', 'v_proj'], bias: 'lora_only' }],
  ['rslora-llama', 'llama', { peftType: 'LORA', r: 8, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], useRslora: true }],
  ['dora-llama', 'llama', { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'gate_proj'], useDora: true }],
  ['dora-gpt2', 'gpt2', { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj'], useDora: true }],
  ['patterns-mistral', 'mistral', { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: LLAMA_LINEARS, rankPattern: { v_proj: 2, 'layers.1.mlp.down_proj': 6 }, alphaPattern: { q_proj: 32, up_proj: 2 } }],
  ['ia3-gpt2', 'gpt2', { peftType: 'IA3' }],
  ['ia3-llama', 'llama', { peftType: 'IA3', targetModules: ['k_proj', 'v_proj', 'down_proj'], feedforwardModules: ['down_proj'] }],
  ['prompt-tuning-llama', 'llama', { peftType: 'PROMPT_TUNING', numVirtualTokens: 3, promptTuningInit: 'RANDOM' }],
  ['prompt-tuning-gpt2', 'gpt2', { peftType: 'PROMPT_TUNING', numVirtualTokens: 2, promptTuningInit: 'RANDOM' }],
  ['prefix-tuning-llama', 'llama', { peftType: 'PREFIX_TUNING', numVirtualTokens: 4 }],
  ['prefix-tuning-gpt2', 'gpt2', { peftType: 'PREFIX_TUNING', numVirtualTokens: 3 }],
  ['p-tuning-mlp-gpt2', 'gpt2', { peftType: 'P_TUNING', numVirtualTokens: 3, encoderReparameterizationType: 'MLP', encoderHiddenSize: 12 }],
  ['p-tuning-lstm-llama', 'llama', { peftType: 'P_TUNING', numVirtualTokens: 4, encoderReparameterizationType: 'LSTM', encoderHiddenSize: 8 }],
  ['modules-to-save-llama', 'llama', { peftType: 'LORA', r: 2, loraAlpha: 4, targetModules: ['q_proj', 'v_proj'], modulesToSave: ['lm_head'] }],
  ['prefix-projection-mistral', 'mistral', { peftType: 'PREFIX_TUNING', numVirtualTokens: 4, prefixProjection: true, encoderHiddenSize: 12 }],
];

function b64Bytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64'));
}

function baseFiles(name: BaseName): Record<string, Uint8Array | string> {
  const fx = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as { files: { 'config.json': string; 'model.safetensors': string } };
  return { 'config.json': fx.files['config.json'], 'model.safetensors': b64Bytes(fx.files['model.safetensors']) };
}

/** t <- t + 0.3 * noise (seeded): off the init, as after some training. */
function perturb(t: Tensor): void {
  noGrad(() => {
    const noise = randn(t.shape, { backend: t.backend.name });
    const scaled = mul(noise, 0.3);
    const moved = add(t, scaled);
    assign(t, moved);
    for (const x of [noise, scaled, moved]) x.dispose();
  });
}

async function main(): Promise<void> {
  const out = process.argv[2];
  if (!out) throw new Error('usage: npx tsx tools/golden/write-our-adapters.ts <out dir>');
  await init({ backend: 'cpu' });
  const bases = new Set<BaseName>();
  for (const [name, base, config] of CASES) {
    manualSeed(20_000 + CASES.findIndex(([n]) => n === name));
    const { model } = await fromPretrained(openSource(baseFiles(base)), { backend: 'cpu' });
    const lm = model as CausalLM & PromptableModel;
    const peft = getPeftModel(lm, config as never) as unknown as {
      trainableParameters(): Tensor[];
      eval(): unknown;
      forward(input: { inputIds: Tensor }): { logits: Tensor } | Tensor;
      saveAdapter(dir: string): Promise<void>;
    };
    for (const t of peft.trainableParameters()) perturb(t);
    peft.eval();
    const vocab = (lm.config as { vocab_size: number }).vocab_size;
    // Fixed, non-trivial ids: a different stride per row, none of them special tokens.
    const inputIds = [0, 1].map((b) => Array.from({ length: 6 }, (_, t) => 3 + ((7 * t + 11 * b + 5) % (vocab - 3))));
    const ids = tensor(Int32Array.from(inputIds.flat()), [2, 6], { dtype: 'i32', backend: 'cpu' });
    // LoRA-family and IA3 wrap the model in place (forward takes the model's input);
    // prompt learning returns the model's output with the virtual tokens' rows.
    const result = peft.forward({ inputIds: ids });
    const logits = 'logits' in result ? result.logits : result;
    const dir = join(out, name);
    mkdirSync(dir, { recursive: true });
    await peft.saveAdapter(dir);
    writeFileSync(join(dir, 'case.json'), JSON.stringify({ base, config, inputIds, logitsShape: logits.shape, logits: Array.from(await logits.data()) }));
    bases.add(base);
    ids.dispose();
    logits.dispose();
    model.dispose();
    console.log(`${name}: adapter and logits [${logits.shape.join(', ')}] written`);
  }
  for (const base of bases) {
    const dir = join(out, 'base', base);
    mkdirSync(dir, { recursive: true });
    for (const [file, data] of Object.entries(baseFiles(base))) writeFileSync(join(dir, file), data);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
