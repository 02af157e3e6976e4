/**
 * The training loop the worker runs: AdamW at a constant learning rate over random
 * windows of the training text, the held-out loss before, every `evalEvery` steps and
 * after, and per-step events (loss, tokens/s, ETA, the step's peak device memory by tag). Pause, resume
 * and stop act between steps, so a step is never half applied.
 */
import type { CausalLMInput, CausalLMOutput } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { type Tensor, memory, noGrad, resetPeakMemory, tensor, tidy } from '@webpeft/tensor';
import { type Window, evalWindows, randomWindows, seededUniform, splitTokens } from './data.js';
import type { Adapted } from './methods.js';
import type { TrainSettings, TrainSummary, WorkerEvent } from './protocol.js';

/** Held-out batches evaluated each time (a fixed set: the same windows every time). */
const EVAL_BATCHES = 4;

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

/** Mean loss over `windows` (eval mode and no gradients for the call). */
export async function heldOutLoss(adapted: Adapted, windows: readonly Window[]): Promise<number> {
  const wasTraining = adapted.peft.training;
  adapted.peft.eval();
  const forward = forwardOf(adapted);
  let total = 0;
  try {
    for (const w of windows) {
      const loss = noGrad(() =>
        tidy(() => {
          const ids = tensor(w.inputIds, [w.batch, w.seqLen], { dtype: 'i32' });
          return forward({ inputIds: ids, labels: ids }).loss!;
        }),
      );
      total += await loss.item();
      loss.dispose();
    }
  } finally {
    adapted.peft.train(wasTraining);
  }
  return total / windows.length;
}

/** Per tag, the larger of two byte counts (the run's peak from the steps' peaks). */
function maxByTag(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [tag, bytes] of Object.entries(b)) out[tag] = Math.max(out[tag] ?? 0, bytes);
  return out;
}

/** Trains `adapted` on `ids` (the tokenised training text) per `s`, streaming events to `emit`. */
export async function trainAdapted(adapted: Adapted, ids: Int32Array, s: TrainSettings, control: TrainControl, emit: (e: WorkerEvent) => void): Promise<TrainSummary> {
  const { train, held } = splitTokens(ids, s.seqLen);
  const evalSet = evalWindows(held, s.batch, s.seqLen, EVAL_BATCHES);
  const uniform = seededUniform(s.seed);
  const forward = forwardOf(adapted);
  const evalBefore = await heldOutLoss(adapted, evalSet);
  emit({ type: 'eval', step: 0, loss: evalBefore });
  adapted.peft.train();
  const optimizer = new AdamW(adapted.peft.trainableParameters(), { lr: s.lr, weightDecay: 0 });
  let peak: Record<string, number> = {};
  const started = performance.now();
  let done = 0;
  let evalAfter = evalBefore;
  emit({ type: 'state', state: 'training' });
  try {
    for (let step = 1; step <= s.steps; step++) {
      await control.checkpoint(emit);
      if (control.stopped) break;
      const w = randomWindows(train, s.batch, s.seqLen, uniform);
      // Each step reports its own peak per tag: activations live only inside the step.
      resetPeakMemory();
      const loss: Tensor = tidy(() => {
        const inputIds = tensor(w.inputIds, [w.batch, w.seqLen], { dtype: 'i32' });
        const l = forward({ inputIds, labels: inputIds }).loss!;
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
      const now = memory();
      const stepPeak = { ...now.peakBytesByTag };
      peak = maxByTag(peak, stepPeak);
      const seconds = (performance.now() - started) / 1000;
      const tokensPerSecond = (step * s.batch * s.seqLen) / seconds;
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
  return { steps: done, stopped: control.stopped, evalBefore, evalAfter, seconds, tokensPerSecond: (done * s.batch * s.seqLen) / seconds, peakBytesByTag: peak };
}
