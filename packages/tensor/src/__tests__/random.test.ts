import * as T from '@webpeft/tensor';
import { type BackendName, getRngState, manualSeed, setRngState } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { philoxBlock } from '../random/philox.js';

beforeAll(async () => {
  await initBackends();
});

const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, '0'));

/** Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors): counter, key, output. */
const KAT: [number[], number[], string[]][] = [
  [[0, 0, 0, 0], [0, 0], ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']],
  [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']],
  [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']],
];

/** 24-bit uniform of a Philox word, as the runtime documents it: `(word >>> 8) / 2^24`. */
const uniformOf = (word: number) => (word >>> 8) / 16777216;

async function draw(backend: BackendName, seed: number, make: () => T.Tensor): Promise<Float32Array> {
  manualSeed(seed);
  const t = make();
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

describe('Philox4x32-10 and the random ops', () => {
  it('matches the Random123 known-answer vectors', () => {
    const out = new Uint32Array(4);
    for (const [[c0, c1, c2, c3], [k0, k1], expected] of KAT) {
      philoxBlock(c0, c1, k0, k1, out, c2, c3);
      expect(hex(out)).toEqual(expected);
    }
  });

  it('rand with seed 0 starts with the first known-answer block (counter 0, key 0)', async () => {
    for (const backend of backendsUnderTest()) {
      const r = await draw(backend, 0, () => T.rand([4], { backend }));
      expect(Array.from(r)).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8].map(uniformOf));
    }
  });

  it('the same seed gives the same rand and randn bits on cpu and webgpu', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    for (const shape of [[7], [3, 5], [0], [2, 0, 3], [33, 17]]) {
      for (const normal of [false, true]) {
        const make = (backend: BackendName) => () => (normal ? T.randn(shape, { backend }) : T.rand(shape, { backend }));
        const a = await draw('cpu', 1234, make('cpu'));
        const b = await draw('webgpu', 1234, make('webgpu'));
        expect(Array.from(b)).toEqual(Array.from(a));
      }
    }
  });

  it('rand is uniform in [0, 1) and randn is standard normal; streams advance and restore', async () => {
    const u = await draw('cpu', 5, () => T.rand([20000], { backend: 'cpu' }));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    const mean = u.reduce((a, v) => a + v, 0) / u.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01); // 5 sigma = 5 * 0.289 / sqrt(20000)
    const n = await draw('cpu', 6, () => T.randn([20000], { backend: 'cpu' }));
    const nm = n.reduce((a, v) => a + v, 0) / n.length;
    const nv = n.reduce((a, v) => a + (v - nm) ** 2, 0) / n.length;
    expect(Math.abs(nm)).toBeLessThan(0.04);
    expect(Math.abs(nv - 1)).toBeLessThan(0.05);
    expect(n.every(Number.isFinite)).toBe(true);

    manualSeed(9);
    const first = T.rand([5], { backend: 'cpu' });
    const state = getRngState();
    const second = T.rand([5], { backend: 'cpu' });
    setRngState(state);
    const again = T.rand([5], { backend: 'cpu' });
    expect(await second.toArray()).not.toEqual(await first.toArray());
    expect(await again.toArray()).toEqual(await second.toArray());
    for (const t of [first, second, again]) t.dispose();
  });

  it('dropout masks are identical on cpu and webgpu, also across a 32-bit counter carry', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const states = [
      { seed: 77, offset: 0 },
      { seed: 2 ** 33 + 5, offset: 2 ** 32 - 3 }, // block counter crosses 2^32 inside the tensor
    ];
    for (const state of states) {
      for (const [n, p] of [
        [1000, 0.1],
        [37, 0.5],
        [64, 0.9],
      ] as const) {
        const masks: number[][] = [];
        const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 0.5) * 3);
        for (const backend of ['cpu', 'webgpu'] as const) {
          setRngState(state);
          const x = T.tensor(data, [n], { backend });
          const y = T.dropout(x, p);
          masks.push(await y.toArray());
          x.dispose();
          y.dispose();
        }
        // Same mask and the same f32 scaling: bit-identical.
        expect(masks[1]).toEqual(masks[0]);
        const scale = Math.fround(1 / (1 - p));
        masks[0].forEach((v, i) => expect(v === 0 || v === Math.fround(data[i] * scale)).toBe(true));
      }
    }
  });

  it('dropout with seed 0 keeps exactly the elements whose known-answer word passes the threshold', async () => {
    const words = [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8];
    for (const backend of backendsUnderTest()) {
      manualSeed(0);
      const x = T.ones([4], { backend });
      const y = T.dropout(x, 0.5);
      expect(await y.toArray()).toEqual(words.map((w) => (uniformOf(w) >= 0.5 ? 2 : 0)));
      x.dispose();
      y.dispose();
    }
  });

  it('dropout keeps a fraction close to 1 - p and scales by 1 / (1 - p)', async () => {
    for (const backend of backendsUnderTest()) {
      for (const p of [0.1, 0.5, 0.8]) {
        manualSeed(3);
        const x = T.ones([20000], { backend });
        const y = T.dropout(x, p);
        const v = await y.toArray();
        const kept = v.filter((e) => e !== 0);
        // 5 standard deviations of a binomial proportion over 20000 draws is below 0.02.
        expect(Math.abs(kept.length / v.length - (1 - p))).toBeLessThan(0.02);
        expect(new Set(kept)).toEqual(new Set([Math.fround(1 / (1 - p))]));
        // Inverted dropout preserves the mean.
        expect(Math.abs(v.reduce((a, e) => a + e, 0) / v.length - 1)).toBeLessThan(0.05 / (1 - p));
        x.dispose();
        y.dispose();
      }
    }
  });

  it('dropout of an empty tensor and invalid p', async () => {
    for (const backend of backendsUnderTest()) {
      const x = T.zeros([2, 0, 3], { backend });
      const y = T.dropout(x, 0.3);
      expect(y.shape).toEqual([2, 0, 3]);
      expect(await y.toArray()).toEqual([]);
      expect(() => T.dropout(x, 1)).toThrow(RangeError);
      x.dispose();
      y.dispose();
    }
  });
});

describe('RNG state checks', () => {
  it('setRngState rejects NaN, negative, fractional, too-large and missing fields, changing nothing', () => {
    setRngState({ seed: 11, offset: 22 });
    const bad: [unknown, RegExp][] = [
      [{ seed: NaN, offset: 0 }, /^setRngState: seed must be a non-negative safe integer, got NaN$/],
      [{ seed: 1, offset: -1 }, /^setRngState: offset must be a non-negative safe integer, got -1$/],
      [{ seed: 1.5, offset: 0 }, /seed must be a non-negative safe integer, got 1.5$/],
      [{ seed: 1, offset: 2 ** 53 }, /offset must be a non-negative safe integer, got 9007199254740992$/],
      [{ seed: 1, offset: Infinity }, /offset must be a non-negative safe integer, got Infinity$/],
      [{ seed: '3', offset: 0 }, /seed must be a non-negative safe integer, got "3"$/],
      [{ seed: 1 }, /offset must be a non-negative safe integer, got undefined$/],
      [null, /^setRngState: an RNG state is an object \{ seed, offset \}, got null$/],
    ];
    for (const [state, pattern] of bad) {
      expect(() => setRngState(state as { seed: number; offset: number })).toThrow(pattern);
      expect(getRngState()).toEqual({ seed: 11, offset: 22 });
    }
    expect(() => T.checkRngState({ seed: 2 ** 53 - 1, offset: 0 }, 'load')).not.toThrow();
  });
});
