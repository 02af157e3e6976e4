import { type BackendName, type Tensor, memory, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { AdamW } from '@webpeft/optim';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDynamicMap } from '../codebooks.js';
import { AdamW8bit, stateViews } from '../optim/index.js';
import fixture from './fixtures/optim8bit/adamw8bit.json' with { type: 'json' };
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

const fx = fixture as unknown as {
  sizes: number[];
  hyper: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  dynamicSigned: string;
  dynamicUnsigned: string;
  paramsAfter: string[][];
  stateAfterStep1: Record<string, string>[];
};

function decode(b64: string): Uint8Array {
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
const f32 = (b64: string) => new Float32Array(decode(b64).buffer);

/** The generator of tools/golden/optim8bit_reference.py: fmix32(i * 0x9E3779B1 + seed) / 2^31 - 1. */
function hashUniform(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let h = (Math.imul(i, 0x9e3779b1) + seed) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    out[i] = h / 2 ** 31 - 1;
  }
  return out;
}

function gradOf(i: number, step: number, n: number): Float32Array {
  const u = hashUniform(n, 1000 * (step + 1) + i);
  return u.map((v, j) => Math.fround(v * Math.fround(10 ** -(Math.floor(j / 256) % 4))));
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('AdamW8bit against the bitsandbytes-algorithm golden (tools/golden/optim8bit_reference.py)', () => {
  it('uses the same dynamic maps as the reference', () => {
    expect(bits(createDynamicMap(true))).toEqual(bits(f32(fx.dynamicSigned)));
    expect(bits(createDynamicMap(false))).toEqual(bits(f32(fx.dynamicUnsigned)));
  });

  for (const backend of ['cpu', 'webgpu'] as BackendName[]) {
    it(`${backend}: 5 steps, a 5000-element parameter (8-bit) and a 100-element one (fp32)`, async () => {
      if (!backendsUnderTest().includes(backend)) return;
      const params = fx.sizes.map((n, i) => tensor(hashUniform(n, 7 + i), [n], { backend, requiresGrad: true }));
      const opt = new AdamW8bit(params, fx.hyper);
      for (let step = 0; step < 5; step++) {
        params.forEach((p, i) => {
          p.grad?.dispose();
          p.grad = tensor(gradOf(i, step, p.size), p.shape, { backend });
        });
        const report = await opt.step();
        expect(report.updated).toBe(2);
        for (let i = 0; i < params.length; i++) {
          const got = (await params[i].data()) as Float32Array;
          const want = f32(fx.paramsAfter[step][i]);
          // cpu repeats the reference operation by operation: exact. WGSL division and
          // sqrt are not required to be correctly rounded (2.5 ulp), so a state value
          // can land one code away and parameters differ in the last bits.
          if (backend === 'cpu') expect(bits(got)).toEqual(bits(want));
          else expectClose(got, want, { rtol: 1e-5, atol: 1e-6, label: `step ${step + 1} param ${i}` });
        }
        if (step === 0) {
          const st = opt.quantState.get(params[0])!;
          const words = (await st.words!.data()) as Uint32Array;
          const v = stateViews(words, st.blocks);
          const want = fx.stateAfterStep1[0];
          const n = fx.sizes[0];
          for (const [key, codes] of [['codes1', v.codes1], ['codes2', v.codes2]] as const) {
            const ref = decode(want[key]);
            let off = 0;
            for (let j = 0; j < n; j++) off = Math.max(off, Math.abs(codes[j] - ref[j]));
            expect(off, key).toBeLessThanOrEqual(backend === 'cpu' ? 0 : 1);
          }
          expectClose(v.absmax1, f32(want.absmax1), { rtol: backend === 'cpu' ? 0 : 1e-6, atol: 0, label: 'absmax1' });
          expectClose(v.absmax2, f32(want.absmax2), { rtol: backend === 'cpu' ? 0 : 1e-6, atol: 0, label: 'absmax2' });
          const small = opt.state.get(params[1])!;
          expectClose((await small.buffers.state1.data()), f32(fx.stateAfterStep1[1].state1), { rtol: backend === 'cpu' ? 0 : 1e-6, atol: 0 });
        }
      }
      opt.disposeState();
      for (const p of params) p.dispose();
    });
  }

  it('state bytes (tag optimizer) are about a quarter of AdamW\'s for a 1M-element parameter', async () => {
    for (const backend of backendsUnderTest()) {
      const measure = async (make: (ps: Tensor[]) => { step(): Promise<unknown>; disposeState(): void }) => {
        const p = tensor(hashUniform(1 << 20, 3), [1 << 20], { backend, requiresGrad: true });
        p.grad = tensor(hashUniform(1 << 20, 4), [1 << 20], { backend });
        const opt = make([p]);
        const before = memory(backend).bytesByTag.optimizer ?? 0;
        await opt.step();
        const bytes = (memory(backend).bytesByTag.optimizer ?? 0) - before;
        opt.disposeState();
        p.grad.dispose();
        p.dispose();
        return bytes;
      };
      const full = await measure((ps) => new AdamW(ps));
      const q = await measure((ps) => new AdamW8bit(ps));
      expect(full).toBe(8 << 20);
      expect(q).toBe((1 << 20) * 2 + 4096 * 8); // codes + one f32 absmax per block and state
      expect(q / full).toBeGreaterThan(0.25);
      expect(q / full).toBeLessThan(0.26);
    }
  });

  it('skips the whole step on a non-finite gradient', async () => {
    for (const backend of backendsUnderTest()) {
      const p = tensor(hashUniform(5000, 1), [5000], { backend, requiresGrad: true });
      const g = hashUniform(5000, 2);
      g[4321] = Number.NaN;
      p.grad = tensor(g, [5000], { backend });
      const opt = new AdamW8bit([p]);
      const before = (await p.data()) as Float32Array;
      const r = await opt.step();
      expect(r.skipped).toBe(true);
      expect(r.nonFinite.map((x) => x.name)).toEqual(['group 0 param 0']);
      expect(bits((await p.data()) as Float32Array)).toEqual(bits(before));
      opt.disposeState();
      p.dispose();
    }
  });
});
