/**
 * A QLoRA training step on GPT-2 small with its real vocabulary (768 wide, 12 layers,
 * 50257 tokens, tied head; seeded random weights): NF4 double-quantized base, LoRA r=8
 * on `c_attn`, AdamW, batch 1 x 64 tokens, in f32 and in f16 compute (where the adapter
 * has `shader-f16`). The f32 embedding (154 MB) is larger than one 128 MiB storage
 * binding, so on software Vulkan it is split in row chunks: the embedding lookup, the
 * tied head's matmul and its gradient run across the chunks. Time per step, tokens/s and
 * peak device bytes by tag.
 */
import { getBackend } from '@webpeft/tensor';
import { methodModel } from './method-model.ts';
import { registerRow } from '../table.ts';
import { measureTrainStep, stepNote } from './train-step.ts';

// GPT-2 small's published config (architecture fields), vocabulary uncut.
const CONFIG = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
const TOKENS = 64;

for (const dtype of ['f32', 'f16'] as const) {
  registerRow({
    group: 'fine-tuning step',
    name: `GPT-2 small (vocab 50257) QLoRA step, 1x${TOKENS} tokens, ${dtype}`,
    async run(ctx) {
      if (dtype === 'f16' && !getBackend().capabilities.f16) throw new Error(`GPT-2 small f16 row: the adapter has no shader-f16, so f16 compute cannot run here`);
      const build = async () => {
        const { model, net, params } = await methodModel('qlora', CONFIG, dtype);
        return { net, params, dispose: () => model.dispose() };
      };
      const m = await measureTrainStep(build, { batch: 1, tokens: TOKENS, vocab: CONFIG.vocab_size }, Math.min(ctx.runs, 2));
      return { oursMs: m.ms, peakBytes: m.peakBytes, peakBytesByTag: m.peakBytesByTag, note: stepNote(m) };
    },
  });
}
