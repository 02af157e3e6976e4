/**
 * The fused linear + cross-entropy over a tied head split in row chunks: a scaled-down
 * Qwen2.5-0.5B training configuration (Qwen2 model with a tied embedding, gradient
 * checkpointing, fused attention, fusedCrossEntropy) whose embedding is larger than one
 * storage binding, made so by the webgpu backend's `setMaxBindingBytes` testing knob (the
 * real model's 151936 x 896 f16 embedding exceeds lavapipe's 128 MiB binding). Every
 * parameter gradient equals the unfused path's, with the embedding trainable (its
 * gradient split too) and frozen under QLoRA, and QLoRA steps lower the loss.
 */
import { type CausalLM, Linear, LlamaForCausalLM } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { type Tensor, getBackend, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  // quant keeps its code tables per backend for the life of the process: uploaded here, not counted as the first test's leak.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

afterEach(() => {
  getBackend('webgpu').setMaxBindingBytes(null);
});

const V = 2000;
const D = 64;
/**
 * 64 KiB bindings: the [2000, 64] f32 embedding (500 KiB) is 8 chunks of 256 rows (the
 * last 208), while every other weight and activation fits one binding.
 */
const BINDING = 65536;
/** 2 x 48 tokens: the fused loss's vocabulary chunks are 168 rows, straddling the embedding's chunks. */
const [B, T] = [2, 48];

/** Qwen2.5-0.5B's architecture scaled down (Qwen2: q/k/v biases, GQA, tied head, RoPE theta 1e6). */
function qwenLike(): LlamaForCausalLM {
  manualSeed(31);
  const model = new LlamaForCausalLM(
    {
      model_type: 'qwen2',
      vocab_size: V,
      hidden_size: D,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
    },
    { backend: 'webgpu' },
  );
  model.setAttnImplementation('fused').gradientCheckpointingEnable();
  return model;
}

function batch(): { inputIds: Tensor; labels: Tensor } {
  const ids = tensor(Int32Array.from(randomInts(B * T, V, 77)), [B, T], { dtype: 'i32', backend: 'webgpu' });
  return { inputIds: ids, labels: ids };
}

/** One forward + backward with `fused` on or off: the loss and the gradient of every trainable parameter (by name), then cleared. */
async function gradients(model: CausalLM, net: CausalLM, fused: boolean): Promise<{ loss: number; grads: Map<string, Float64Array> }> {
  model.fusedCrossEntropy = fused;
  const input = batch();
  const loss = tidy(() => net.forward(input).loss!);
  loss.backward();
  const grads = new Map<string, Float64Array>();
  for (const [name, p] of net.namedParameters()) {
    if (!p.grad) continue;
    grads.set(name, Float64Array.from(await p.grad.data()));
    p.grad.dispose();
    p.grad = null;
  }
  const value = await loss.item();
  for (const t of [loss, input.inputIds]) t.dispose();
  return { loss: value, grads };
}

/** 1e-5 of a gradient's largest entry: the floor for entries that are sums cancelling to near zero. */
function scaleTol(g: Float64Array): number {
  return 1e-5 * g.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

function expectSameGradients(fused: { loss: number; grads: Map<string, Float64Array> }, unfused: { loss: number; grads: Map<string, Float64Array> }): void {
  expectClose([fused.loss], [unfused.loss], { rtol: 1e-5, label: 'loss' });
  expect([...fused.grads.keys()]).toEqual([...unfused.grads.keys()]);
  for (const [name, g] of fused.grads) {
    const ref = unfused.grads.get(name)!;
    expectClose(g, ref, { rtol: 1e-5, atol: scaleTol(ref), label: name });
  }
}

describe('fusedCrossEntropy over a tied head split in row chunks (scaled-down Qwen2.5-0.5B configuration)', () => {
  it('full fine-tuning: the loss and every gradient, the split embedding\'s too, equal the unfused path', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    getBackend('webgpu').setMaxBindingBytes(BINDING);
    const model = qwenLike();
    try {
      model.train();
      const embed = model.getInputEmbeddings().weight;
      expect(embed.storage!.bindings).toBe(8);
      expect(model.lm_head).toBeInstanceOf(Linear);
      expect((model.lm_head as Linear).weight).toBe(embed);
      const unfused = await gradients(model, model, false);
      const fused = await gradients(model, model, true);
      expect(fused.grads.has('model.embed_tokens.weight')).toBe(true);
      expectSameGradients(fused, unfused);
    } finally {
      model.dispose();
    }
  }, 300_000);

  it('QLoRA (NF4, LoRA on every linear layer, frozen split head): gradients equal the unfused path and AdamW steps lower the loss', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    getBackend('webgpu').setMaxBindingBytes(BINDING);
    const model = qwenLike();
    try {
      await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
      const peft = getPeftModel(model, { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: 'all-linear' });
      const net = peft.model as CausalLM;
      net.train();
      expect(model.getInputEmbeddings().weight.storage!.bindings).toBe(8);
      // LoRA's B starts at zero, so only B has a gradient at first: take one step first so A has one too.
      const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-2, weightDecay: 0 });
      const losses: number[] = [];
      const step = async () => {
        model.fusedCrossEntropy = true;
        const input = batch();
        const loss = tidy(() => {
          const l = net.forward(input).loss!;
          l.backward();
          return l;
        });
        await optimizer.step();
        optimizer.zeroGrad();
        losses.push(await loss.item());
        for (const t of [loss, input.inputIds]) t.dispose();
      };
      await step();
      const unfused = await gradients(model, net, false);
      const fused = await gradients(model, net, true);
      expect(fused.grads.size).toBe(peft.trainableParameters().length);
      expect(fused.grads.has('model.embed_tokens.weight')).toBe(false);
      expectSameGradients(fused, unfused);
      try {
        for (let i = 0; i < 5; i++) await step();
      } finally {
        optimizer.disposeState();
      }
      // Six steps on one batch at lr 1e-2 from about ln(2000) = 7.6: every step lowers the loss.
      for (let i = 1; i < losses.length; i++) expect(losses[i], `loss after step ${i + 1} (${losses.join(', ')})`).toBeLessThan(losses[i - 1]);
      expect(losses[losses.length - 1]).toBeLessThan(losses[0] - 0.1);
    } finally {
      model.dispose();
    }
  }, 300_000);
});
