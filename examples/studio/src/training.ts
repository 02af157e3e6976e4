/**
 * The training loop the worker runs: AdamW at a constant learning rate over seeded
 * batches of the SFT rows, the held-out loss before, every `evalEvery` steps and after,
 * and per-step events (loss, tokens/s, ETA, the step's peak device memory by tag). Pause,
 * resume and stop act between steps, so a step is never half applied.
 */
import type { CausalLMInput, CausalLMOutput, SftBatch } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { type Tensor, memory, noGrad, resetPeakMemory, tensor, tidy, withMemoryTag, zeros } from '@webpeft/tensor';
import { type PreparedData, RowSampler, seededUniform } from './data.js';
import type { Adapted } from './methods.js';
import type { TrainSettings, TrainSummary, WorkerEvent } from './protocol.js';

/** Held-out batches evaluated each time (a fixed set: the same batches every time). */
export const EVAL_BATCHES = 4;

/** Pause/resume/stop between steps. */
export class TrainControl {
  private paused = false;
  private wake: (() => void) | null = null;
  stopped = false;

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.wake?.();
  }

  stop(): void {
    this.stopped = true;
    this.resume();
  }

  /** Resolves at once unless paused; then when resumed or stopped. Emits the state changes. */
  async checkpoint(emit: (e: WorkerEvent) => void): Promise<void> {
    // A macrotask turn, so control messages posted during the step are handled now.
    await new Promise((r) => setTimeout(r, 0));
    if (!this.paused) return;
    emit({ type: 'state', state: 'paused' });
    await new Promise<void>((r) => (this.wake = r));
    this.wake = null;
    emit({ type: 'state', state: 'training' });
  }
}

/** The forward of an adapted model (prompt-learning models inject their virtual tokens). */
export function forwardOf(adapted: Adapted): (input: CausalLMInput) => CausalLMOutput {
  return (input) => adapted.peft.forward(input);
}

/**
 * The model input of a collated batch: ids and labels `[B, T]`, the padding mask `[B, T]`
 * or a packed batch's per-sample mask `[B, T, T]` with its restarting positions. Call in a
 * `tidy` scope: the tensors are made here.
 */
export function batchInput(b: SftBatch): CausalLMInput {
  const shape = [b.batchSize, b.seqLen];
  const packed = b.positionIds !== undefined;
  return {
    inputIds: tensor(b.inputIds, shape, { dtype: 'i32' }),
    labels: tensor(b.labels, shape, { dtype: 'i32' }),
    attentionMask: tensor(b.attentionMask, packed ? [b.batchSize, b.seqLen, b.seqLen] : shape, { dtype: 'i32' }),
    ...(packed ? { positionIds: tensor(b.positionIds!, shape, { dtype: 'i32' }) } : {}),
  };
}

/** Tokens of a batch that are not padding (what tokens/s counts). */
function realTokens(b: SftBatch): number {
  if (b.positionIds === undefined) return b.attentionMask.reduce((n, m) => n + m, 0);
  // A packed row's pad positions have an all-zero mask row.
  let n = 0;
  for (let r = 0; r < b.batchSize * b.seqLen; r++) if (b.attentionMask.subarray(r * b.seqLen, (r + 1) * b.seqLen).some((m) => m !== 0)) n++;
  return n;
}

/**
 * The out-of-memory test hook (`?oom-at-step=N` on the page): a real allocation larger
 * than any device buffer, so the backend refuses it with its own `OutOfMemoryError`
 * carrying the memory by tag at that moment.
 */
function allocateTooMuch(): void {
  withMemoryTag('activations', () => zeros([2 ** 20, 2 ** 20])).dispose();
}

/** Mean loss over `batches` (eval mode and no gradients for the call). */
export async function heldOutLoss(adapted: Adapted, batches: readonly SftBatch[]): Promise<number> {
  const wasTraining = adapted.peft.training;
  adapted.peft.eval();
  const forward = forwardOf(adapted);
  let total = 0;
  try {
    for (const b of batches) {
      const loss = noGrad(() => tidy(() => forward(batchInput(b)).loss!));
      total += await loss.item();
      loss.dispose();
    }
  } finally {
    adapted.peft.train(wasTraining);
  }
  return total / batches.length;
}

/** Per tag, the larger of two byte counts (the run's peak from the steps' peaks). */
function maxByTag(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [tag, bytes] of Object.entries(b)) out[tag] = Math.max(out[tag] ?? 0, bytes);
  return out;
}

/** Trains `adapted` on `data` per `s`, streaming events to `emit`. */
export async function trainAdapted(adapted: Adapted, data: PreparedData, s: TrainSettings, control: TrainControl, emit: (e: WorkerEvent) => void): Promise<TrainSummary> {
  const evalSet = data.evalSet;
  const sampler = new RowSampler(data.train, s.batch, seededUniform(s.seed));
  const forward = forwardOf(adapted);
  const evalBefore = await heldOutLoss(adapted, evalSet);
  emit({ type: 'eval', step: 0, loss: evalBefore });
  adapted.peft.train();
  const optimizer = new AdamW(adapted.peft.trainableParameters(), { lr: s.lr, weightDecay: 0 });
  let peak: Record<string, number> = {};
  const started = performance.now();
  let done = 0;
  let tokens = 0;
  let evalAfter = evalBefore;
  emit({ type: 'state', state: 'training' });
  try {
    for (let step = 1; step <= s.steps; step++) {
      await control.checkpoint(emit);
      if (control.stopped) break;
      const batch = data.collate(sampler.next());
      // Each step reports its own peak per tag: activations live only inside the step.
      resetPeakMemory();
      const loss: Tensor = tidy(() => {
        if (step === s.oomAtStep) allocateTooMuch();
        const l = forward(batchInput(batch)).loss!;
        l.backward();
        return l;
      });
      let value: number;
      try {
        value = await loss.item();
      } finally {
        loss.dispose();
      }
      await optimizer.step();
      optimizer.zeroGrad();
      done = step;
      tokens += realTokens(batch);
      const now = memory();
      const stepPeak = { ...now.peakBytesByTag };
      peak = maxByTag(peak, stepPeak);
      const seconds = (performance.now() - started) / 1000;
      const tokensPerSecond = tokens / seconds;
      emit({ type: 'step', step, total: s.steps, loss: value, tokensPerSecond, etaSeconds: (seconds / step) * (s.steps - step), memoryByTag: stepPeak, peakBytes: now.peakBytes });
      if (s.evalEvery > 0 && step % s.evalEvery === 0 && step !== s.steps) emit({ type: 'eval', step, loss: await heldOutLoss(adapted, evalSet) });
    }
    evalAfter = await heldOutLoss(adapted, evalSet);
    emit({ type: 'eval', step: done, loss: evalAfter });
  } finally {
    optimizer.disposeState();
    emit({ type: 'state', state: 'idle' });
  }
  const seconds = (performance.now() - started) / 1000;
  return { steps: done, stopped: control.stopped, evalBefore, evalAfter, seconds, tokensPerSecond: tokens / seconds, peakBytesByTag: peak };
}
