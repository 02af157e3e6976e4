/**
 * The measured training step of the model-size rows (SmolLM2-135M, GPT-2 small with its
 * full vocabulary, Qwen2.5-0.5B): build the model, run one step so the optimizer state
 * exists, then time `runs` more steps of batch `batch x tokens` and read the peak device
 * bytes, in total and by tag, above what earlier rows left alive.
 */
import type { CausalLM } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { MEMORY_TAGS, type MemoryTag, type Tensor, memory, resetPeakMemory, sync, tensor, tidy } from '@webpeft/tensor';
import { medianMs } from '../timing.ts';

/** What a row trains: `net` runs the step, `params` train, `dispose` frees every tensor of the model. */
export interface StepModel {
  net: Pick<CausalLM, 'forward'>;
  params: Tensor[];
  dispose(): void;
}

/** The measured numbers of a step row. */
export interface StepMeasurement {
  /** Median milliseconds per step. */
  ms: number;
  tokensPerS: number;
  /** Peak device bytes during the timed steps, above the bytes alive before the model was built. */
  peakBytes: number;
  peakBytesByTag: Record<MemoryTag, number>;
}

/**
 * Builds the model with `build` (after the baseline is read, so its bytes count), runs
 * one untimed AdamW step (lr 1e-4, no weight decay) on `batch x tokens` fixed token ids
 * below `vocab`, resets the peak, times `runs` steps and frees the model and its optimizer
 * state whatever happens. `runs` 0 measures that first step itself (for models whose step
 * takes many minutes on a software adapter): its peak includes creating the optimizer
 * state, which every later step holds too, and its time includes the pipeline compiles.
 */
export async function measureTrainStep(build: () => Promise<StepModel>, shape: { batch: number; tokens: number; vocab: number }, runs: number): Promise<StepMeasurement> {
  const before = memory();
  const model = await build();
  const optimizer = new AdamW(model.params, { lr: 1e-4, weightDecay: 0 });
  const ids = new Int32Array(shape.batch * shape.tokens).map((_, i) => (i * 997) % shape.vocab);
  const step = async () => {
    const loss = tidy(() => {
      const x = tensor(ids, [shape.batch, shape.tokens], { dtype: 'i32' });
      const l = model.net.forward({ inputIds: x, labels: x }).loss!;
      l.backward();
      return l;
    });
    await optimizer.step();
    optimizer.zeroGrad();
    loss.dispose();
    await sync();
  };
  try {
    let ms: number;
    if (runs === 0) {
      resetPeakMemory();
      const t0 = performance.now();
      await step();
      ms = performance.now() - t0;
    } else {
      await step(); // optimizer state exists from here on, as in any later step
      resetPeakMemory();
      ms = await medianMs(step, runs, 0);
    }
    const after = memory();
    const peakBytesByTag = Object.fromEntries(MEMORY_TAGS.map((t) => [t, after.peakBytesByTag[t] - before.bytesByTag[t]])) as Record<MemoryTag, number>;
    return { ms, tokensPerS: ((shape.batch * shape.tokens) / ms) * 1000, peakBytes: after.peakBytes - before.liveBytes, peakBytesByTag };
  } finally {
    optimizer.zeroGrad();
    optimizer.disposeState();
    model.dispose();
  }
}

/** Bytes as MiB with one decimal. */
export const mib = (b: number): string => (b / 2 ** 20).toFixed(1);

/** `"N tokens/s; peak X MiB; by tag: weights ..., grads ..."`, the note of a step row. */
export function stepNote(m: StepMeasurement): string {
  const tags = MEMORY_TAGS.map((t) => `${t} ${mib(m.peakBytesByTag[t])}`).join(', ');
  // Software adapters run a step of these models in minutes: below 10 tokens/s two significant digits.
  const rate = m.tokensPerS >= 10 ? m.tokensPerS.toFixed(0) : m.tokensPerS.toPrecision(2);
  return `${rate} tokens/s; peak ${mib(m.peakBytes)} MiB; by tag: ${tags}`;
}
