/**
 * The fused webgpu update of a parameter split in row chunks (larger than one storage
 * binding, here made so by the backend's `setMaxBindingBytes` testing knob): AdamW
 * updates it in pieces, reading and writing across its chunks, and equals the update of
 * the same parameter in one buffer and on the cpu backend; the non-finite check finds a
 * NaN in any chunk.
 */
import { type BackendName, type Tensor, getBackend, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdamW } from '../index.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(() => {
  if (backendsUnderTest().includes('webgpu')) getBackend('webgpu').setMaxBindingBytes(null);
});

/** [250, 24] f32 is 24000 bytes: 7 chunks of 4 KiB bindings. */
const SHAPES = [[250, 24], [5]];

function params(backend: BackendName): Tensor[] {
  return SHAPES.map((s, i) => tensor(randomArray(s[0] * (s[1] ?? 1), 40 + i), s, { backend, requiresGrad: true }));
}

function setGrads(ps: Tensor[], step: number, poison?: number): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    const g = randomArray(p.size, 500 + 10 * step + i, -2, 2);
    if (poison !== undefined && i === 0) g[poison] = Number.NaN;
    p.grad = tensor(g, p.shape, { backend: p.backend.name });
  });
}

/** Params after three AdamW steps on `backend`, with bindings capped at `binding` bytes. */
async function run(backend: BackendName, binding: number | null): Promise<Float32Array[]> {
  if (binding !== null) getBackend('webgpu').setMaxBindingBytes(binding);
  const ps = params(backend);
  if (binding !== null) expect(ps[0].storage!.bindings).toBe(7);
  const opt = new AdamW(ps, { lr: 1e-2, weightDecay: 0.1 });
  try {
    for (let step = 0; step < 3; step++) {
      setGrads(ps, step);
      expect((await opt.step()).skipped).toBe(false);
    }
    // A NaN in the last chunk skips the step and changes nothing.
    const before = (await ps[0].data()) as Float32Array;
    setGrads(ps, 3, 245 * 24 + 7);
    const report = await opt.step();
    expect(report.skipped).toBe(true);
    expect(await ps[0].data()).toEqual(before);
    return await Promise.all(ps.map(async (p) => (await p.data()) as Float32Array));
  } finally {
    opt.zeroGrad();
    opt.disposeState();
    for (const p of ps) p.dispose();
    getBackend('webgpu').setMaxBindingBytes(null);
  }
}

describe('AdamW on a parameter split across storage bindings', () => {
  it('updates it across chunks as in one buffer and on cpu', async () => {
    const cpu = await run('cpu', null);
    const whole = await run('webgpu', null);
    const split = await run('webgpu', 4096);
    split.forEach((v, i) => {
      expectClose(v, whole[i], { rtol: 1e-6, atol: 1e-7, label: `param ${i}: split vs one buffer` });
      expectClose(v, cpu[i], { rtol: 1e-5, atol: 1e-6, label: `param ${i}: split webgpu vs cpu` });
    });
  });
});
