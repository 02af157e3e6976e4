/**
 * A LoRA training step on a GPT-2-small-shaped model (768 wide, 12 layers, 32000
 * tokens; batch 2 x 128 tokens) with gradient checkpointing off and on: time per step
 * and peak device bytes, in total and by tag. Checkpointing keeps only each decoder
 * layer's input between forward and backward, so the activations' peak falls, for one
 * more forward of every layer in backward (the "on" row's baseline is the "off" row).
 */
import { GPT2LMHeadModel } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { MEMORY_TAGS, type MemoryTag, manualSeed, memory, resetPeakMemory, sync, tensor, tidy } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

// The vocabulary is cut to 32000 as in the fine-tuning rows: one tensor must fit one
// storage binding on software Vulkan (128 MiB). Dropout on, as in training.
const CONFIG = { model_type: 'gpt2', vocab_size: 32000, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 };
const [BATCH, TOKENS] = [2, 128];

interface Measured {
  ms: number;
  peakBytes: number;
  peakBytesByTag: Record<MemoryTag, number>;
}

const measured = new Map<boolean, Measured>();

async function measure(checkpointing: boolean, runs: number): Promise<Measured> {
  // Bytes other rows left alive are not this row's: peaks are reported above them.
  const before = memory();
  manualSeed(0);
  const model = new GPT2LMHeadModel(CONFIG);
  const peft = getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: ['c_attn', 'c_proj', 'c_fc'] });
  if (checkpointing) peft.gradientCheckpointingEnable();
  peft.train();
  const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-4, weightDecay: 0 });
  const ids = new Int32Array(BATCH * TOKENS).map((_, i) => (i * 997) % CONFIG.vocab_size);
  const step = async () => {
    const loss = tidy(() => {
      const x = tensor(ids, [BATCH, TOKENS], { dtype: 'i32' });
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
    const ms = await medianMs(step, runs, 0);
    const after = memory();
    const peakBytesByTag = Object.fromEntries(MEMORY_TAGS.map((t) => [t, after.peakBytesByTag[t] - before.bytesByTag[t]])) as Record<MemoryTag, number>;
    return { ms, peakBytes: after.peakBytes - before.liveBytes, peakBytesByTag };
  } finally {
    optimizer.zeroGrad();
    optimizer.disposeState();
    peft.dispose();
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

for (const checkpointing of [false, true]) {
  registerRow({
    group: 'fine-tuning step',
    name: `GPT-2 LoRA step, ${BATCH}x${TOKENS} tokens, gradient checkpointing ${checkpointing ? 'on' : 'off'}`,
    async run(ctx) {
      const r = await measure(checkpointing, Math.min(ctx.runs, 2));
      measured.set(checkpointing, r);
      const off = measured.get(false);
      const tags = MEMORY_TAGS.map((t) => `${t} ${mib(r.peakBytesByTag[t])}`).join(', ');
      const ratios =
        checkpointing && off
          ? `; on/off: activations ${(r.peakBytesByTag.activations / off.peakBytesByTag.activations).toFixed(3)}, peak bytes ${(r.peakBytes / off.peakBytes).toFixed(3)}, time ${(r.ms / off.ms).toFixed(2)}`
          : '';
      return {
        oursMs: r.ms,
        ...(checkpointing && off ? { baselineMs: off.ms, baselineName: 'checkpointing off' } : {}),
        peakBytes: r.peakBytes,
        peakBytesByTag: r.peakBytesByTag,
        note: `peak ${mib(r.peakBytes)} MiB; by tag: ${tags}${ratios}`,
      };
    },
  });
}
