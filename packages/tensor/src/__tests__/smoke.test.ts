import { add, init, matmul, memory, sum, tensor, _engine } from '@webpeft/tensor';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

describe('smoke', () => {
  it('adds on webgpu', async () => {
    const a = tensor([1, 2, 3, 4], [2, 2], { backend: 'webgpu' });
    const b = tensor([10, 20], [2], { backend: 'webgpu' });
    const c = add(a, b);
    expect(await c.toArray()).toEqual([11, 22, 13, 24]);
    const m = matmul(a, a);
    expect(await m.toArray()).toEqual([7, 10, 15, 22]);
    const s = sum(a, 1);
    expect(await s.toArray()).toEqual([3, 7]);
    expect(memory('webgpu').liveTensors).toBeGreaterThan(0);
  });
  it('backprops on cpu', async () => {
    const a = tensor([1, 2, 3], [3], { backend: 'cpu', requiresGrad: true });
    const l = sum(add(a, a));
    l.backward();
    expect(await a.grad!.toArray()).toEqual([2, 2, 2]);
  });
});
export { init, _engine };
