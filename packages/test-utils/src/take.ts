import type { Tensor, TensorData } from '@webpeft/tensor';

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
