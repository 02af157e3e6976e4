/**
 * Every matmul variant forced on whatever adapter runs the test. Node only: SwiftShader
 * (the browser project's adapter) compiles these unrolled shaders for minutes; the
 * browser project checks matmul through the variants it picks itself (matmul.test.ts).
 */
import { type Tensor, getBackend, matmul, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type MatmulVariant, chooseMatmulVariant, setMatmulConfigOverride, setMatmulVariantOverride, variantConfig } from '../backends/webgpu/kernels/matmul.js';
import { type MatmulConfig, SHARED_TILE, SOFTWARE_SHARED_TILE, TILE, WIDE_TILE, configId } from '../backends/webgpu/kernels/matmul/configs.js';

beforeAll(async () => {
  await initBackends();
});

let seed = 1;

/** Same seeded data on cpu and webgpu. */
function pair(shape: number[]): [Tensor, Tensor] {
  const n = shape.reduce((p, d) => p * d, 1);
  const data = randomArray(n, seed++);
  return [tensor(data, shape, { backend: 'cpu' }), tensor(data, shape, { backend: 'webgpu' })];
}

/** Operand shapes of `[..., m, k] x [..., k, n]` under the transpose flags. */
function shapes(m: number, k: number, n: number, tA: boolean, tB: boolean, batchA: number[] = [], batchB: number[] = []): [number[], number[]] {
  return [[...batchA, ...(tA ? [k, m] : [m, k])], [...batchB, ...(tB ? [n, k] : [k, n])]];
}

async function check(m: number, k: number, n: number, tA: boolean, tB: boolean, batchA: number[] = [], batchB: number[] = []): Promise<void> {
  const [sa, sb] = shapes(m, k, n, tA, tB, batchA, batchB);
  const [ac, ag] = pair(sa);
  const [bc, bg] = pair(sb);
  const opts = { transposeA: tA, transposeB: tB };
  const expected = matmul(ac, bc, opts);
  const actual = matmul(ag, bg, opts);
  expect(actual.shape).toEqual(expected.shape);
  const label = `${JSON.stringify(sa)}${tA ? '^T' : ''} x ${JSON.stringify(sb)}${tB ? '^T' : ''}`;
  // f32 accumulation over k terms of magnitude <= 1: error grows like sqrt(k) ulps of the sum.
  expectClose(await actual.data(), await expected.data(), { rtol: 1e-4, atol: 1e-5 * Math.sqrt(k) + 1e-6, label });
  for (const t of [ac, ag, bc, bg, expected, actual]) t.dispose();
}

const FLAGS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/** Problem sizes per variant: aligned (vec4 loads) and odd (guarded scalar loads). */
const CASES: { variant: MatmulVariant; sizes: [number, number, number][] }[] = [
  { variant: 'tile', sizes: [[36, 48, 44], [33, 29, 41], [1, 17, 1]] },
  { variant: 'smallk', sizes: [[36, 8, 44], [37, 5, 19], [2, 7, 3]] },
  { variant: 'splitk', sizes: [[64, 512, 8], [7, 259, 3], [12, 300, 4]] },
  { variant: 'simple', sizes: [[36, 48, 44], [33, 29, 41], [1, 17, 1]] },
  // Workgroup-memory tiles (64 x 64 outputs, k tiles of 16): one tile partly filled, odd
  // sizes, and several tiles in m and n with a k that ends inside a tile.
  { variant: 'shared', sizes: [[36, 48, 44], [33, 29, 41], [72, 40, 136]] },
  // Split-k reduced with subgroupAdd (skipped where the adapter has no subgroups).
  { variant: 'subgroup', sizes: [[64, 512, 8], [7, 259, 3], [12, 300, 4]] },
];

describe('webgpu matmul kernels match cpu', () => {
  it('selects variants by shape class', () => {
    expect(chooseMatmulVariant(4096, 768, 8)).toBe('splitk');
    expect(chooseMatmulVariant(4096, 768, 8, true)).toBe('tile');
    expect(chooseMatmulVariant(4096, 8, 768)).toBe('smallk');
    expect(chooseMatmulVariant(1024, 1024, 1024)).toBe('shared');
    // SwiftShader: unaligned shapes with a real k loop take the small simple shader.
    expect(chooseMatmulVariant(65, 70, 33, true, 16384, true)).toBe('simple');
    expect(chooseMatmulVariant(64, 64, 64, true, 16384, true)).toBe('tile');
    // Hardware adapters: workgroup-memory tiles for aligned products of 64 and more,
    // subgroup split-k where the adapter has subgroups; software adapters keep the register tile.
    expect(chooseMatmulVariant(1024, 1024, 1024, false, 16384)).toBe('shared');
    expect(chooseMatmulVariant(1023, 1024, 1024, false, 16384)).toBe('tile');
    expect(chooseMatmulVariant(4096, 768, 8, false, 16384, false, true)).toBe('subgroup');
    // Software adapters: workgroup-memory tiles only for long reductions (k >= 8192) and
    // products of 1024 and more in every dimension; not on SwiftShader (slow compiler).
    expect(chooseMatmulVariant(1024, 1024, 1024, true, 16384)).toBe('shared');
    expect(chooseMatmulVariant(64, 32000, 768, true, 16384)).toBe('shared');
    expect(chooseMatmulVariant(64, 3072, 768, true, 16384)).toBe('tile');
    expect(chooseMatmulVariant(512, 768, 768, true, 16384)).toBe('tile');
    expect(chooseMatmulVariant(64, 32000, 8, true, 16384)).toBe('tile');
    expect(chooseMatmulVariant(1024, 1024, 1024, true, 16384, true)).toBe('tile');
    expect(chooseMatmulVariant(1024, 1024, 1024, true, 8192)).toBe('tile');
  });

  it('maps variants to tiles by adapter class: 8 x 8 per thread on lavapipe-like adapters', () => {
    const id = (v: MatmulVariant, aligned: boolean, n: number, software: boolean) => configId(variantConfig(v, aligned, n, software));
    expect(id('tile', true, 768, false)).toBe(configId({ kind: 'tile', tile: TILE }));
    expect(id('tile', true, 768, true)).toBe(configId({ kind: 'tile', tile: WIDE_TILE }));
    expect(id('tile', true, 8, true)).toBe('tile/2x32r8c4');
    expect(id('tile', false, 768, true)).toBe('tile/8x8r4c4');
    expect(id('shared', true, 768, false)).toBe(configId({ kind: 'shared', tile: SHARED_TILE }));
    expect(id('shared', true, 768, true)).toBe(configId({ kind: 'shared', tile: SOFTWARE_SHARED_TILE }));
  });

  // Each heuristic tile forced by configuration, so all of them are checked on any adapter
  // (the variant override above reaches only the ones this adapter's class maps to).
  const DEFAULT_TILES: MatmulConfig[] = [
    { kind: 'tile', tile: TILE },
    { kind: 'tile', tile: WIDE_TILE },
    { kind: 'shared', tile: SHARED_TILE },
    { kind: 'shared', tile: SOFTWARE_SHARED_TILE },
  ];
  for (const config of DEFAULT_TILES) {
    it(`${configId(config)}: all transpose combinations, one and several blocks`, async () => {
      if (!backendsUnderTest().includes('webgpu')) return;
      setMatmulConfigOverride(config);
      try {
        for (const [m, k, n] of [[36, 48, 44], [72, 40, 136]] as const) {
          for (const [tA, tB] of FLAGS) await check(m, k, n, tA, tB);
        }
      } finally {
        setMatmulConfigOverride(null);
      }
    }, 600_000);
  }

  // Generous timeout: a cold shader cache compiles each of the 8 layouts of a variant (seconds each on lavapipe).
  for (const { variant, sizes } of CASES) {
    it(`${variant}: all transpose combinations, aligned and odd sizes`, async () => {
      if (!backendsUnderTest().includes('webgpu')) return;
      if (variant === 'subgroup' && !getBackend('webgpu').capabilities.subgroups) return;
      setMatmulVariantOverride(variant);
      try {
        for (const [m, k, n] of sizes) {
          // Split-k's guarded (odd-size) shaders take minutes to compile cold on lavapipe:
          // check them in the layouts LoRA uses (x A^T and x B), all four when aligned.
          const aligned = m % 4 === 0 && k % 4 === 0 && n % 4 === 0;
          const flags = (variant === 'splitk' || variant === 'subgroup') && !aligned ? FLAGS.filter(([tA]) => !tA) : FLAGS;
          for (const [tA, tB] of flags) await check(m, k, n, tA, tB);
        }
        // Batch broadcast through the same variant.
        await check(sizes[0][0], sizes[0][1], sizes[0][2], false, true, [2, 1], [3]);
      } finally {
        setMatmulVariantOverride(null);
      }
    }, 600_000);
  }

  it('broadcasts batch dims', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    await check(8, 12, 16, false, false, [2, 1], [3]);
    await check(9, 7, 5, true, false, [3], [2, 1]);
    await check(12, 300, 4, false, true, [1, 2], [3, 1]);
    await check(16, 4, 20, true, true, [2], []);
  });

  it('k = 0 gives zeros and empty dims give empty results', async () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    for (const [tA, tB] of FLAGS) {
      await check(4, 0, 8, tA, tB);
      await check(3, 0, 5, tA, tB);
    }
    const a = tensor(new Float32Array(0), [0, 4], { backend: 'webgpu' });
    const b = tensor(randomArray(12, 7), [4, 3], { backend: 'webgpu' });
    const z = matmul(a, b);
    expect(z.shape).toEqual([0, 3]);
    expect(Array.from(await z.data())).toEqual([]);
    for (const t of [a, b, z]) t.dispose();
    await check(5, 6, 0, false, false);
    await check(5, 6, 4, false, false, [0], [1]);
  });
});
