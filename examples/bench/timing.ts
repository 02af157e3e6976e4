/**
 * Median wall time of `runs` calls of `fn` (each awaited, so `fn` must wait for its GPU
 * work) after `warmup` untimed calls (pipeline compilation, buffer pools).
 */
export async function medianMs(fn: () => Promise<void>, runs: number, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
}
