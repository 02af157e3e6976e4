/**
 * Gradient checkpointing with adapters inside the decoder layers: LoRA (with dropout),
 * IA3, bottleneck adapters, LoRA over an NF4 base (QLoRA), LoRA over an f16 base and
 * prefix tuning (whose per-layer keys/values enter each checkpoint as inputs). For each,
 * the loss and every trainable gradient equal the run without checkpointing bit for
 * bit, on each backend. Node only (with the other end-to-end tests of this example).
 */
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@webpeft/nn';
import { type BottleneckConfig, type IA3Config, type LoraConfig, type PrefixTuningConfig, getPeftModel } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { type BackendName, getBackend, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

const V = 40;
const GPT2 = { model_type: 'gpt2', vocab_size: V, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1, initializer_range: 0.1 };
const LLAMA = { model_type: 'llama', vocab_size: V, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, attention_dropout: 0.1 };

interface Case {
  build: (backend: BackendName) => Promise<CausalLM>;
  adapter: LoraConfig | IA3Config | BottleneckConfig | PrefixTuningConfig;
  /** Only where the backend can run it (f16 needs the adapter's shader-f16 on webgpu). */
  on?: (backend: BackendName) => boolean;
}

const CASES: Record<string, Case> = {
  'gpt2 LoRA with dropout': {
    build: async (backend) => new GPT2LMHeadModel(GPT2, { backend }),
    adapter: { peftType: 'LORA', r: 4, loraAlpha: 8, loraDropout: 0.2, targetModules: ['c_attn', 'c_proj', 'c_fc'] },
  },
  'llama IA3': {
    build: async (backend) => new LlamaForCausalLM(LLAMA, { backend }),
    adapter: { peftType: 'IA3' },
  },
  'llama bottleneck (parallel)': {
    build: async (backend) => new LlamaForCausalLM(LLAMA, { backend }),
    adapter: { peftType: 'BOTTLENECK', isParallel: true, mhAdapter: false, nonLinearity: 'relu', dropout: 0.1 },
  },
  'llama QLoRA (NF4, double quant)': {
    build: async (backend) => {
      const m = new LlamaForCausalLM(LLAMA, { backend });
      await quantizeModel(m, { quantType: 'nf4', doubleQuant: true });
      return m;
    },
    adapter: { peftType: 'LORA', r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: 'all-linear' },
  },
  'gpt2 f16 LoRA': {
    build: async (backend) => new GPT2LMHeadModel(GPT2, { backend, dtype: 'f16' }),
    adapter: { peftType: 'LORA', r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: ['c_attn', 'c_proj', 'c_fc'] },
    on: (backend) => backend === 'cpu' || getBackend('webgpu').capabilities.f16,
  },
  'llama prefix tuning': {
    build: async (backend) => new LlamaForCausalLM(LLAMA, { backend }),
    adapter: { peftType: 'PREFIX_TUNING', numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 8 },
  },
};

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe.each(Object.keys(CASES))('gradient checkpointing with %s', (name) => {
  it('gives bit-identical loss and trainable gradients', async () => {
    const c = CASES[name];
    for (const backend of backendsUnderTest()) {
      if (c.on && !c.on(backend)) continue; // f16 compute needs shader-f16 on webgpu
      manualSeed(11);
      const model = disposeAfterTest(await c.build(backend));
      const peft = disposeAfterTest(getPeftModel(model, c.adapter));
      const ids = disposeAfterTest(tensor(randomInts(2 * 10, V, 3), [2, 10], { dtype: 'i32', backend }));
      const runs: { loss: Float32Array; grads: Float32Array[] }[] = [];
      for (const on of [false, true]) {
        // Through the wrapper, as transformers' PEFT models forward it.
        if (on) peft.gradientCheckpointingEnable();
        manualSeed(5);
        const loss = tidy(() => peft.forward({ inputIds: ids, labels: ids }).loss!);
        loss.backward();
        const trainable = peft.namedParameters().filter(([, p]) => p.requiresGrad);
        expect(trainable.length).toBeGreaterThan(0);
        const grads: Float32Array[] = [];
        for (const [, p] of trainable) {
          grads.push(Float32Array.from((await p.grad!.data()) as Float32Array));
          p.grad!.dispose();
          p.grad = null;
        }
        runs.push({ loss: Float32Array.from((await loss.data()) as Float32Array), grads });
        loss.dispose();
      }
      expect(model.isGradientCheckpointing).toBe(true);
      expect(peft.isGradientCheckpointing).toBe(true);
      expect(bits(runs[1].loss), `${backend} loss`).toEqual(bits(runs[0].loss));
      runs[1].grads.forEach((g, i) => expect(bits(g), `${backend} grad ${i}`).toEqual(bits(runs[0].grads[i])));
    }
  });
});
