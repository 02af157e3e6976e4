/**
 * One training step of full fine-tuning, LoRA and QLoRA on the same GPT-2-small-shaped
 * model (768 wide, 12 layers, 32000 tokens; batch 1 x 64 tokens): time per step and
 * peak device bytes by tag, each as a ratio to full fine-tuning. AdamW throughout.
 *
 * tfjs has no counterpart here: its WebGPU backend has no fused layer norm, tanh-GELU or
 * cross-entropy with an ignore index, so a tfjs GPT-2 would time its composites rather
 * than the same model; the kernels they share are compared in the matmul rows.
 */
import { AdamW } from '@webpeft/optim';
import { type MemoryTag, memory, resetPeakMemory, sync, tensor, tidy } from '@webpeft/tensor';
import { type Method, methodModel } from './method-model.ts';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

// GPT-2 small's blocks; the vocabulary is cut to 32000 because one tensor must fit one
// storage binding, and software Vulkan caps bindings at 128 MiB (50257 x 768 f32 is 154 MB).
const CONFIG = { model_type: 'gpt2', vocab_size: 32000, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
const TOKENS = 64;
const TAGS: MemoryTag[] = ['weights', 'quant', 'grads', 'optimizer', 'activations'];

const results = new Map<Method, { ms: number; peak: Record<MemoryTag, number> }>();

async function measure(method: Method, runs: number): Promise<{ ms: number; peak: Record<MemoryTag, number> }> {
  // Bytes other rows left alive are not this method's: peaks are reported above them.
  const before = memory().bytesByTag;
  const { model, net, params } = await methodModel(method, CONFIG);
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const ids = new Int32Array(TOKENS).map((_, i) => (i * 997) % CONFIG.vocab_size);
  const step = async () => {
    const loss = tidy(() => {
      const x = tensor(ids, [1, TOKENS], { dtype: 'i32' });
      const l = net.forward({ inputIds: x, labels: x }).loss!;
      l.backward();
      return l;
    });
    await optimizer.step();
    optimizer.zeroGrad();
    loss.dispose();
    await sync();
  };
  await step(); // optimizer state exists from here on, as in any later step
  resetPeakMemory();
  const ms = await medianMs(step, runs, 0);
  const peakAll = memory().peakBytesByTag;
  const peak = Object.fromEntries(TAGS.map((t) => [t, peakAll[t] - before[t]])) as Record<MemoryTag, number>;
  optimizer.zeroGrad();
  optimizer.disposeState();
  model.dispose();
  return { ms, peak };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

for (const method of ['full', 'lora', 'qlora'] as const) {
  registerRow({
    group: 'fine-tuning step',
    name: `GPT-2 small ${method}, 1x${TOKENS} tokens`,
    async run(ctx) {
      const r = await measure(method, Math.min(ctx.runs, 2));
      results.set(method, r);
      const full = results.get('full');
      const tags = TAGS.map((t) => `${t} ${mib(r.peak[t])}`).join(', ');
      const ratios = full && method !== 'full' ? `; time/full ${(r.ms / full.ms).toFixed(2)}, bytes/full ${(sum(r.peak) / sum(full.peak)).toFixed(3)}` : '';
      const tokensPerS = (TOKENS / r.ms) * 1000;
      return { oursMs: r.ms, note: `${tokensPerS.toFixed(0)} tokens/s; peak MiB by tag: ${tags}${ratios}` };
    },
  });
}

function sum(p: Record<MemoryTag, number>): number {
  return TAGS.reduce((n, t) => n + p[t], 0);
}
