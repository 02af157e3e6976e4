/**
 * A LoRA training step on a model with SmolLM2-135M's exact shapes (LLaMA family: 576
 * wide, 30 layers, 9 heads over 3 key/value heads, MLP 1536, tied 49152-token vocabulary;
 * seeded random weights, f32): batch 1 x 64 tokens, LoRA r=8 on `q_proj`/`v_proj` (PEFT's
 * default targets for LLaMA), AdamW. Time per step, tokens/s and peak device bytes in
 * total and by tag. The f32 embedding (113 MB) fits one 128 MiB storage binding, so this
 * runs on software Vulkan as it is.
 */
import { LlamaForCausalLM } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { MEMORY_TAGS, type MemoryTag, manualSeed, memory, resetPeakMemory, sync, tensor, tidy } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

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
    // Bytes other rows left alive are not this row's: peaks are reported above them.
    const before = memory();
    manualSeed(0);
    const model = new LlamaForCausalLM(CONFIG);
    const peft = getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] });
    peft.train();
    const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-4, weightDecay: 0 });
    const ids = new Int32Array(TOKENS).map((_, i) => (i * 997) % CONFIG.vocab_size);
    const step = async () => {
      const loss = tidy(() => {
        const x = tensor(ids, [1, TOKENS], { dtype: 'i32' });
        const l = peft.forward({ inputIds: x, labels: x }).loss!;
        l.backward();
        return l;
      });
      await optimizer.step();
      optimizer.zeroGrad();
      loss.dispose();
      await sync();
    };
    try {
      await step(); // optimizer state exists from here on, as in any later step
      resetPeakMemory();
      const ms = await medianMs(step, Math.min(ctx.runs, 2), 0);
      const after = memory();
      const peakBytesByTag = Object.fromEntries(MEMORY_TAGS.map((t) => [t, after.peakBytesByTag[t] - before.bytesByTag[t]])) as Record<MemoryTag, number>;
      const peakBytes = after.peakBytes - before.liveBytes;
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      const tags = MEMORY_TAGS.map((t) => `${t} ${mib(peakBytesByTag[t])}`).join(', ');
      return { oursMs: ms, peakBytes, peakBytesByTag, note: `${((TOKENS / ms) * 1000).toFixed(0)} tokens/s; peak ${mib(peakBytes)} MiB; by tag: ${tags}` };
    } finally {
      optimizer.zeroGrad();
      optimizer.disposeState();
      peft.dispose();
    }
  },
});
