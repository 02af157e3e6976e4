import type { Tensor, TensorData } from '@webpeft/tensor';
import { onTestFinished } from 'vitest';

/**
 * Reads a tensor that the caller owns and will not use again (an op's result made only to
 * be checked), then disposes it, so checks written inline leave nothing alive.
 * @example expect(await takeArray(argmax(x, 1))).toEqual([3, 0]);
 */
export async function takeData(t: Tensor): Promise<TensorData> {
  try {
    return await t.data();
  } finally {
    t.dispose();
  }
}

/** {@link takeData} as a plain number array. */
export async function takeArray(t: Tensor): Promise<number[]> {
  return Array.from(await takeData(t));
}

/**
 * Disposes `owner` (a tensor, a model, anything with `dispose()`) when the running test
 * ends, before the per-test leak check reads the counts. Returns `owner`.
 * @example const model = disposeAfterTest(causalLMFromConfig(config, { backend }));
 */
export function disposeAfterTest<T extends { dispose(): void }>(owner: T): T {
  onTestFinished(() => owner.dispose());
  return owner;
}
