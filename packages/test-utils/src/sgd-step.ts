import { type Tensor, assign, mul, noGrad, sub, tidy } from '@webpeft/tensor';

/**
 * A plain in-place SGD update `p -= lr * p.grad` for tests that must not depend on
 * `@webpeft/optim`; clears each gradient afterwards. Parameters without a gradient are
 * an error (a test that expects one would otherwise pass silently).
 */
export function sgdStep(params: readonly Tensor[], lr: number): void {
  noGrad(() =>
    tidy(() => {
      for (const p of params) {
        if (!p.grad) throw new Error(`sgdStep: parameter ${p.toString()} has no gradient`);
        assign(p, sub(p, mul(p.grad, lr)));
        p.grad.dispose();
        p.grad = null;
      }
    }),
  );
}
