import { type Tensor, assign, mul, noGrad, tidy } from '@webpeft/tensor';

/**
 * Gradient accumulation over `steps` micro batches, so a large batch fits in memory.
 * `backward()` already sums gradients into `.grad`; this helper makes that sum the
 * gradient of the mean loss over the whole batch, in one of two ways:
 *
 * - scale each micro-batch loss by `1 / steps` before `backward()` (`scaleLoss`), or
 * - backpropagate unscaled losses and divide the summed gradients once (`averageGrads`).
 *
 * Both give the gradient of the full-batch mean when the micro batches have equal size.
 * `microStep()` counts micro batches and says when to step the optimizer.
 * @example
 * const acc = new GradientAccumulator(4);
 * for (const mb of microBatches) {
 *   acc.scaleLoss(model.forward(mb).loss).backward();
 *   if (acc.microStep()) { await opt.step(); opt.zeroGrad(); }
 * }
 */
export class GradientAccumulator {
  /** Micro batches seen since the last optimizer step. */
  count = 0;

  constructor(readonly steps: number) {
    if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`GradientAccumulator: steps must be a positive integer, got ${steps}`);
  }

  /** `loss / steps`, differentiable: backpropagating it adds this micro batch's share. */
  scaleLoss(loss: Tensor): Tensor {
    return this.steps === 1 ? loss : mul(loss, 1 / this.steps);
  }

  /**
   * Records one micro batch (call after its `backward()`). Returns true when `steps`
   * micro batches have accumulated: step the optimizer and zero the gradients then.
   */
  microStep(): boolean {
    this.count++;
    if (this.count < this.steps) return false;
    this.count = 0;
    return true;
  }

  /** Divides every gradient by `steps` in place (for losses that were not scaled). */
  averageGrads(params: readonly Tensor[]): void {
    if (this.steps === 1) return;
    tidy(() =>
      noGrad(() => {
        for (const p of params) if (p.grad) assign(p.grad, mul(p.grad, 1 / this.steps));
      }),
    );
  }

  /** Forgets a partial accumulation (e.g. at the end of an epoch). */
  reset(): void {
    this.count = 0;
  }
}
