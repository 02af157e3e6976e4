/**
 * The matmul autotuner: shape classes, configuration ids, timing a class's candidates,
 * using the choice only while autotuning is on, persisting it to a JSON file and reading
 * it back in a fresh state, and refusing a corrupt file. Node only (the file store).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureMatmulAutotune, getBackend, matmul, tensor, tuneMatmul } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adapterKey, clearAutotuneMemory, shapeClassKey, sizeBucket, tunedConfig } from '../backends/webgpu/kernels/matmul/autotune.js';
import { candidateConfigs, configId, parseConfigId } from '../backends/webgpu/kernels/matmul/configs.js';
import { TUNE_FILE } from '../backends/webgpu/kernels/matmul/tune-store.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(async () => {
  await configureMatmulAutotune({ autotune: false, cacheDir: null });
  clearAutotuneMemory();
});

const DEVICE = { workgroupStorageBytes: 16384, maxInvocations: 256, subgroups: true };

describe('matmul autotune bookkeeping', () => {
  it('buckets sizes by powers of two into shape classes', () => {
    expect([0, 1, 2, 3, 5, 64, 65, 768, 1024].map(sizeBucket)).toEqual([0, 1, 2, 4, 8, 64, 128, 1024, 1024]);
    const l = { transposeA: false, transposeB: true, aligned: true };
    expect(shapeClassKey({ m: 4096, k: 768, n: 8 }, 1, 'f32', l)).toBe('f32/01/v4/m4096k1024n8b1');
    expect(shapeClassKey({ m: 1000, k: 600, n: 9 }, 3, 'f16', { ...l, aligned: false })).toBe('f16/01/s/m1024k1024n16b4');
  });

  it('every candidate id parses back to itself; unknown or invalid ids give null', () => {
    for (const [m, k, n] of [[1024, 1024, 1024], [4096, 768, 8], [4096, 8, 768], [33, 29, 41]]) {
      const cands = candidateConfigs({ m, k, n }, m % 4 === 0 && k % 4 === 0 && n % 4 === 0, DEVICE);
      expect(cands.length).toBeGreaterThan(1);
      for (const c of cands) expect(configId(parseConfigId(configId(c))!)).toBe(configId(c));
    }
    // Split-k only for n <= 8, small-k only for k <= 16.
    expect(candidateConfigs({ m: 64, k: 64, n: 64 }, true, DEVICE).map(configId)).not.toContain('splitk');
    expect(candidateConfigs({ m: 64, k: 64, n: 64 }, true, DEVICE).map(configId).some((id) => id.startsWith('smallk'))).toBe(false);
    expect(candidateConfigs({ m: 64, k: 512, n: 8 }, true, { ...DEVICE, subgroups: false }).map(configId)).not.toContain('splitk/sg');
    for (const bad of ['tile/8x8r5c4', 'shared/8x8r8c4k6', 'warp', '']) expect(parseConfigId(bad)).toBeNull();
  });
});

describe('tuneMatmul', () => {
  it('times the candidates, uses the choice only with autotune on, persists and reloads it', { timeout: 600_000 }, async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const dir = await mkdtemp(join(tmpdir(), 'webpeft-tune-'));
    try {
      await configureMatmulAutotune({ autotune: true, cacheDir: dir });
      const problem = { m: 40, k: 36, n: 44, transposeB: true };
      const candidates = ['tile/8x8r8c4', 'shared/8x8r8c4k16'];
      const [r] = await tuneMatmul([problem], { runs: 1, candidates });
      expect(r.cached).toBe(false);
      expect(r.timings.map((t) => t.config)).toEqual(candidates);
      for (const t of r.timings) expect(t.ms).toBeGreaterThan(0);
      expect(r.chosen).toBe(r.timings.reduce((x, y) => (y.ms < x.ms ? y : x)).config);
      const adapter = adapterKey(getBackend('webgpu').adapterInfo);
      const cls = 'f32/01/v4/m64k64n64b1';
      expect(r.shapeClass).toBe(cls);
      expect(configId(tunedConfig(adapter, cls)!)).toBe(r.chosen);

      // The file holds the choice under the adapter's key.
      const file = JSON.parse(await readFile(join(dir, TUNE_FILE), 'utf8')) as unknown;
      expect(file).toEqual({ version: 1, adapters: { [adapter]: { [cls]: r.chosen } } });

      // A second call finds it recorded; a fresh state reads it back from the file.
      expect((await tuneMatmul([problem], { candidates }))[0]).toEqual({ shapeClass: cls, chosen: r.chosen, timings: [], cached: true });
      clearAutotuneMemory();
      await configureMatmulAutotune({ autotune: true, cacheDir: dir });
      expect(configId(tunedConfig(adapter, cls)!)).toBe(r.chosen);

      // The product through the tuned choice is right (float64 reference).
      const ad = randomArray(40 * 36, 5);
      const bd = randomArray(44 * 36, 6);
      const a = tensor(ad, [40, 36], { backend: 'webgpu' });
      const b = tensor(bd, [44, 36], { backend: 'webgpu' });
      const y = matmul(a, b, { transposeB: true });
      const ref = new Float64Array(40 * 44);
      for (let i = 0; i < 40; i++) for (let j = 0; j < 44; j++) for (let p = 0; p < 36; p++) ref[i * 44 + j] += ad[i * 36 + p] * bd[j * 36 + p];
      expectClose(await y.data(), ref, { rtol: 1e-5, atol: 1e-5, label: 'tuned matmul' });
      for (const t of [a, b, y]) t.dispose();

      // Autotune off: the heuristic again (no choice is looked up).
      await configureMatmulAutotune({ autotune: false });
      expect(tunedConfig(adapter, cls)).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('without problems tunes the classes dispatched since autotune was on', { timeout: 600_000 }, async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    await configureMatmulAutotune({ autotune: true, cacheDir: null });
    const a = tensor(randomArray(12 * 20, 7), [12, 20], { backend: 'webgpu' });
    const b = tensor(randomArray(20 * 24, 8), [20, 24], { backend: 'webgpu' });
    matmul(a, b).dispose();
    matmul(a, b).dispose();
    const results = await tuneMatmul(undefined, { runs: 1, candidates: ['tile/8x8r8c4'] });
    expect(results.map((r) => [r.shapeClass, r.chosen])).toEqual([['f32/00/v4/m16k32n32b1', 'tile/8x8r8c4']]);
    expect(await tuneMatmul()).toEqual([]);
    for (const t of [a, b]) t.dispose();
  });

  it('refuses bad options and a corrupt cache file, naming them', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    await expect(tuneMatmul([{ m: 0, k: 4, n: 4 }])).rejects.toThrow(/tuneMatmul: m must be a positive integer, got 0/);
    await expect(tuneMatmul([{ m: 4, k: 4, n: 4 }], { runs: 0 })).rejects.toThrow(/runs must be a positive integer/);
    await expect(tuneMatmul([{ m: 4, k: 4, n: 4 }], { candidates: ['warp'] })).rejects.toThrow(/unknown candidate configuration 'warp'/);
    await expect(tuneMatmul([{ m: 64, k: 64, n: 64 }], { candidates: ['splitk'] })).rejects.toThrow(/no candidate configuration fits f32\/00\/v4\/m64k64n64b1/);
    const dir = await mkdtemp(join(tmpdir(), 'webpeft-tune-'));
    try {
      await writeFile(join(dir, TUNE_FILE), '{ not json');
      await expect(configureMatmulAutotune({ autotune: true, cacheDir: dir })).rejects.toThrow(new RegExp(`${TUNE_FILE} is not JSON`));
      await writeFile(join(dir, TUNE_FILE), '{"version": 2}');
      await expect(configureMatmulAutotune({ autotune: true, cacheDir: dir })).rejects.toThrow(/is not a version-1 tuning file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
