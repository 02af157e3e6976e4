import type { BackendName } from '../backend.js';
import { engine } from '../engine.js';
import type { Tensor } from '../tensor.js';

/** Copies `t` to another backend (a new leaf tensor with the same values). */
export async function toBackend(t: Tensor, backend: BackendName): Promise<Tensor> {
  const target = engine.getBackend(backend);
  const data = await t.data();
  const out = engine.makeTensor(target, t.shape, t.dtype, 'toBackend');
  target.write(out.liveStorage('toBackend'), data);
  return out;
}
