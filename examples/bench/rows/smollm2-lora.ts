/**
 * A LoRA training step on a model with SmolLM2-135M's exact shapes (LLaMA family: 576
 * wide, 30 layers, 9 heads over 3 key/value heads, MLP 1536, tied 49152-token vocabulary;
 * seeded random weights, f32): batch 1 x 64 tokens, LoRA r=8 on `q_proj`/`v_proj` (PEFT's
 * default targets for LLaMA), AdamW. Time per step, tokens/s and peak device bytes in
 * total and by tag. The f32 embedding (113 MB) fits one 128 MiB storage binding, so this
 * runs on software Vulkan as it is.
 */
import { LlamaForCausalLM } from '@webpeft/nn';
import { getPeftModel } from '@webpeft/peft';
import { manualSeed } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { measureTrainStep, stepNote } from './train-step.ts';

/** SmolLM2-135M's published config.json (architecture fields). */
const CONFIG = {
  model_type: 'llama',
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  head_dim: 64,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  tie_word_embeddings: true,
};
const TOKENS = 64;

registerRow({
  group: 'fine-tuning step',
  name: `SmolLM2-135M-shape LoRA step, 1x${TOKENS} tokens`,
  async run(ctx) {
    const build = async () => {
      manualSeed(0);
      const model = new LlamaForCausalLM(CONFIG);
      const peft = getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] });
      peft.train();
      return { net: peft, params: peft.trainableParameters(), dispose: () => peft.dispose() };
    };
    const m = await measureTrainStep(build, { batch: 1, tokens: TOKENS, vocab: CONFIG.vocab_size }, Math.min(ctx.runs, 2));
    return { oursMs: m.ms, peakBytes: m.peakBytes, peakBytesByTag: m.peakBytesByTag, note: stepNote(m) };
  },
});
