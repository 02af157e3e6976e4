/** Which tensors (gradients) hold a NaN or infinity, checked before any parameter changes. */
import { type Backend, type Tensor, tensor, withMemoryTag } from '@webpeft/tensor';
import { runInPlace } from '@webpeft/tensor/kernel';
import { registerOptimizerOps } from './register.js';

/**
 * Indices (ascending) into `tensors` of those holding a NaN or infinity: the
 * `NonFiniteFlags` op on each backend the tensors live on, then one read-back per
 * backend.
 * @example
 * const bad = await nonFiniteIndices(params.map((p) => p.grad!));   // [] when all finite
 */
export async function nonFiniteIndices(tensors: readonly Tensor[]): Promise<number[]> {
  registerOptimizerOps();
  const byBackend = new Map<Backend, number[]>();
  tensors.forEach((t, i) => {
    const b = t.backend;
    const list = byBackend.get(b);
    if (list) list.push(i);
    else byBackend.set(b, [i]);
  });
  const bad: number[] = [];
  for (const [backend, idx] of byBackend) {
    const flags = withMemoryTag('optimizer', () => tensor(new Uint32Array(idx.length), [idx.length], { dtype: 'u32', backend: backend.name }));
    try {
      runInPlace('NonFiniteFlags', { tensors: idx.map((i) => tensors[i]), flags }, backend);
      const values = (await flags.data()) as Uint32Array;
      idx.forEach((i, j) => {
        if (values[j] !== 0) bad.push(i);
      });
    } finally {
      flags.dispose();
    }
  }
  return bad.sort((a, b) => a - b);
}
