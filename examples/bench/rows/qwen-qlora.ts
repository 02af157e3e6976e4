/**
 * A QLoRA training step on a model with Qwen2.5-0.5B's exact shapes (Qwen2: 896 wide, 24
 * layers, 14 heads over 2 key/value heads, MLP 4864, tied 151936-token vocabulary, RoPE
 * theta 1e6; seeded random weights built directly, no checkpoint): NF4 double-quantized
 * base with f16 compute where the adapter has `shader-f16` (f32 elsewhere), LoRA r=16 on
 * every linear layer, gradient checkpointing, fused attention and the fused linear +
 * cross-entropy, one AdamW step on batch 1 x 256 tokens. The tied embedding (272 MB in
 * f16) is larger than one 128 MiB binding on software Vulkan, so it is split in row
 * chunks and the fused loss walks the vocabulary across them.
 *
 * The claim: peak device bytes at most 0.75 GiB (Hugging Face PEFT + bitsandbytes needs
 * well over 1 GiB here). The note gives the peak by tag and says whether it holds.
 */
import { LlamaForCausalLM } from '@webpeft/nn';
import { getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { getBackend, manualSeed } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { measureTrainStep, mib, stepNote } from './train-step.ts';

/** Qwen2.5-0.5B's published config.json (architecture fields). */
const CONFIG = {
  model_type: 'qwen2',
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  hidden_act: 'silu',
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  tie_word_embeddings: true,
  use_sliding_window: false,
  sliding_window: 32768,
  max_window_layers: 24,
  initializer_range: 0.02,
};
const TOKENS = 256;
/** The row's memory claim, bytes. */
const LIMIT_BYTES = 0.75 * 2 ** 30;

registerRow({
  group: 'fine-tuning step',
  name: `Qwen2.5-0.5B-shape QLoRA step, 1x${TOKENS} tokens`,
  async run() {
    const dtype = getBackend().capabilities.f16 ? 'f16' : 'f32';
    const build = async () => {
      manualSeed(0);
      const model = new LlamaForCausalLM(CONFIG, { dtype });
      try {
        await quantizeModel(model, { quantType: 'nf4', doubleQuant: true, computeDtype: dtype });
        model.setAttnImplementation('fused').gradientCheckpointingEnable();
        model.fusedCrossEntropy = true;
        const peft = getPeftModel(model, { peftType: 'LORA', r: 16, loraAlpha: 32, targetModules: 'all-linear' });
        peft.train();
        return { net: peft, params: peft.trainableParameters(), dispose: () => peft.dispose() };
      } catch (e) {
        model.dispose();
        throw e;
      }
    };
    // The one step is the measured one (it also creates the optimizer state): a step takes many minutes on software Vulkan.
    const m = await measureTrainStep(build, { batch: 1, tokens: TOKENS, vocab: CONFIG.vocab_size }, 0);
    const verdict = m.peakBytes <= LIMIT_BYTES ? 'meets' : 'does NOT meet';
    return { oursMs: m.ms, peakBytes: m.peakBytes, peakBytesByTag: m.peakBytesByTag, note: `${dtype} compute; first step (its time includes pipeline compiles); ${stepNote(m)}; ${verdict} the 0.75 GiB (${mib(LIMIT_BYTES)} MiB) claim` };
  },
});
