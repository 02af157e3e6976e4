/**
 * LoRA and QLoRA training steps over a half-precision GPT-2 (PyTorch autocast / PEFT
 * semantics): the base is f16 (QLoRA: NF4 with f16 compute), the LoRA weights, their
 * gradients and the AdamW state stay f32; the loss is f32, finite and falls. Runs on
 * webgpu where available, else on the cpu reference. Node only (with the other
 * end-to-end tests of this example).
 */
import { type CausalLM, GPT2LMHeadModel } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { type IA3Config, type LoraConfig, type PrefixTuningConfig, type PromptTuningConfig, getPeftModel } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, Linear4bit, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { type Tensor, cast, getBackend, manualSeed, setBackend, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';

const CONFIG = { model_type: 'gpt2', vocab_size: 32, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, initializer_range: 0.1 };

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

/** webgpu when its adapter has shader-f16, else the cpu reference. */
function f16Device(): 'webgpu' | 'cpu' {
  return backendsUnderTest().includes('webgpu') && getBackend('webgpu').capabilities.f16 ? 'webgpu' : 'cpu';
}

function f16Base(): CausalLM {
  manualSeed(4321);
  return disposeAfterTest(new GPT2LMHeadModel(CONFIG, { dtype: 'f16' }));
}

/** The adapter methods trained here. */
type AdapterConfig = LoraConfig | IA3Config | PromptTuningConfig | PrefixTuningConfig;

const LORA: AdapterConfig = { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj', 'c_fc'] };

/** Trains the adapter `config` adds to `model` for a few AdamW steps on one batch; returns the losses. */
async function train(model: CausalLM, config: AdapterConfig = LORA, wrapped?: ReturnType<typeof getPeftModel>): Promise<number[]> {
  // Prompt-learning encoders belong to the wrapper, not to the base model.
  const peft = wrapped ?? disposeAfterTest(getPeftModel(model, config));
  const trainable = peft.namedParameters().filter(([, p]) => p.requiresGrad);
  expect(trainable.length).toBeGreaterThan(0);
  for (const [name, p] of trainable) expect(p.dtype, `${name}: trainable parameters stay f32`).toBe('f32');
  const optimizer = new AdamW(peft.trainableParameters(), { lr: 3e-2, weightDecay: 0 });
  onTestFinished(() => optimizer.disposeState());
  const ids = randomInts(4 * 16, 32, 77);
  const losses: number[] = [];
  for (let step = 0; step < 6; step++) {
    const loss: Tensor = tidy(() => {
      const x = tensor(ids, [4, 16], { dtype: 'i32' });
      const out = peft.forward({ inputIds: x, labels: x });
      expect(out.logits.dtype).toBe('f16');
      const l = out.loss!;
      expect(l.dtype, 'the loss of an f16 model is f32').toBe('f32');
      l.backward();
      return l;
    });
    if (step === 0) {
      for (const [name, p] of trainable) expect(p.grad?.dtype, `${name}: gradients are f32`).toBe('f32');
    }
    await optimizer.step();
    if (step === 0) {
      const { state } = await optimizer.stateDict();
      expect(Object.keys(state).length).toBe(trainable.length);
      for (const s of Object.values(state)) for (const b of Object.values(s.buffers)) expect(b.dtype, 'optimizer state is f32').toBe('f32');
    }
    optimizer.zeroGrad();
    losses.push(await loss.item());
    loss.dispose();
  }
  return losses;
}

/** Finite losses whose last is at least `margin` below the first (methods with few parameters move slower). */
function expectFalling(losses: number[], label: string, margin = 0.2): void {
  expect(losses.every(Number.isFinite), `${label}: finite losses ${losses.join(', ')}`).toBe(true);
  expect(losses[losses.length - 1], `${label}: losses ${losses.join(', ')}`).toBeLessThan(losses[0] - margin);
}

describe('training adapters over an f16 GPT-2', () => {
  it('LoRA: f32 adapters and optimizer state over an f16 base', async () => {
    setBackend(f16Device());
    const model = f16Base();
    for (const [name, p] of model.namedParameters()) expect(p.dtype, name).toBe('f16');
    expectFalling(await train(model), 'LoRA');
  }, 600_000);

  it('IA3, prompt tuning and prefix tuning: f32 vectors and virtual tokens over an f16 base', async () => {
    setBackend(f16Device());
    expectFalling(await train(f16Base(), { peftType: 'IA3' }), 'IA3', 0.05);
    expectFalling(await train(f16Base(), { peftType: 'PROMPT_TUNING', numVirtualTokens: 4 }), 'prompt tuning', 0.02);
    expectFalling(await train(f16Base(), { peftType: 'PREFIX_TUNING', numVirtualTokens: 4 }), 'prefix tuning', 0.02);
  }, 600_000);

  it('QLoRA: NF4 base with f16 compute', async () => {
    setBackend(f16Device());
    const model = f16Base();
    await quantizeModel(model, { quantType: 'nf4', doubleQuant: true, computeDtype: 'f16' });
    expect(model.namedModules().filter(([, m]) => m instanceof Linear4bit).length).toBe(8);
    const peft = disposeAfterTest(getPeftModel(model, LORA));
    expectFalling(await train(model, LORA, peft), 'QLoRA');
    // Merging into full-precision layers keeps the model f16 and its logits (within f16 rounding).
    const ids = tensor(randomInts(2 * 8, 32, 78), [2, 8], { dtype: 'i32' });
    const before = tidy(() => cast(peft.forward({ inputIds: ids }).logits, 'f32'));
    const merged = (await peft.mergeAndUnload({ dequantize: true })) as CausalLM;
    expect(merged.namedModules().some(([, m]) => m instanceof Linear4bit)).toBe(false);
    for (const [name, p] of merged.namedParameters()) expect(p.dtype, name).toBe('f16');
    const after = tidy(() => cast(merged.forward({ inputIds: ids }).logits, 'f32'));
    const [b, a] = [(await before.data()) as Float32Array, (await after.data()) as Float32Array];
    const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i]), `logit ${i}`).toBeLessThanOrEqual(2 ** -6 * scale);
    for (const t of [ids, before, after]) t.dispose();
  }, 600_000);
});
