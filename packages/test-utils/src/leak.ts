import { type BackendName, memory } from '@webpeft/tensor';
import { expect } from 'vitest';

/** Live tensor and buffer counts of a backend. */
export function liveCounts(backend?: BackendName): { tensors: number; buffers: number; bytes: number } {
  const m = memory(backend);
  return { tensors: m.liveTensors, buffers: m.liveBuffers, bytes: m.liveBytes };
}

/** Runs `fn` and asserts it leaves no live tensor or buffer behind. */
export async function expectNoLeak(fn: () => unknown, backend?: BackendName): Promise<void> {
  const before = liveCounts(backend);
  await fn();
  expect(liveCounts(backend)).toEqual(before);
}
