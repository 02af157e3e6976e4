import { registerKernel } from '../../../registry.js';
import { broadcastStrides, stridesOf } from '../../../shape.js';
import { matmulShapes } from '../../../ops/matmul-shapes.js';
import { MAX_WORKGROUPS_PER_DIM } from '../constants.js';
import { program } from '../program.js';
import type { WebGpuKernelContext } from '../../../kernel-context.js';
import { Uniforms, checkRank } from '../wgsl.js';
import { checkF16 } from '../f16.js';
import { SPLIT_K_MAX_N, splitKStorageBytes } from './matmul/split-k.js';
import {
  GUARDED_TILE,
  type MatmulConfig,
  type MatmulDeviceClass,
  NARROW_TILE,
  SHARED_TILE,
  SMALL_K_MAX,
  SMALL_K_TILE,
  SOFTWARE_SHARED_TILE,
  TILE,
  WIDE_TILE,
  buildMatmul,
  configFits,
} from './matmul/configs.js';
import { adapterKey, autotuneEnabled, noteUntuned, shapeClassKey, tunedConfig } from './matmul/autotune.js';
import { sharedStorageBytes } from './matmul/shared.js';
import { type MatmulEpilogue, type MatmulLayout, matmulInputCount } from './matmul/wgsl.js';
import type { Tensor } from '../../../tensor.js';

/** Shortest k worth splitting across a workgroup for skinny outputs. */
const SPLIT_K_MIN_K = 256;
/** Output blocks below which a GPU is under-filled by the register tile. */
const SPLIT_K_MAX_TILES = 1 << 14;
/** Smallest m, n and k for which a hardware adapter gets the workgroup-memory tile by default. */
const SHARED_MIN_DIM = 64;
/** On software adapters: k from which the workgroup-memory tile beats the wide register tile. */
const SOFTWARE_SHARED_MIN_K = 8192;
/** On software adapters: smallest m, n and k of a square-ish product that gets the workgroup-memory tile. */
const SOFTWARE_SHARED_MIN_DIM = 1024;

/**
 * Kernel families the heuristic picks between (the autotuner picks exact
 * configurations, see `matmul/configs.ts`): `tile` (register tile, no workgroup
 * memory), `smallk`, `splitk`, `subgroup` (split-k reduced with `subgroupAdd`),
 * `shared` (workgroup-memory tiles) and `simple`.
 */
export type MatmulVariant = 'tile' | 'smallk' | 'splitk' | 'subgroup' | 'shared' | 'simple';

let override: MatmulVariant | null = null;
let configOverride: MatmulConfig | null = null;

/**
 * Forces one variant for every matmul (tests and benchmarks cover each variant on any
 * adapter); `null` restores the automatic choice. A variant outside its range (split-k
 * for n > 8, small-k for k > 16, subgroups without the feature) falls back to the
 * automatic choice.
 */
export function setMatmulVariantOverride(variant: MatmulVariant | null): void {
  override = variant;
}

/**
 * Forces one exact configuration (the autotuner's timing runs, tests); `null` restores
 * the automatic choice. A configuration that does not fit a problem falls back too.
 */
export function setMatmulConfigOverride(config: MatmulConfig | null): void {
  configOverride = config;
}

/**
 * Variant choice: `splitk` for skinny outputs with a long reduction (`n <= 8`,
 * `k >= 256`, too few output blocks to fill a GPU) on hardware adapters only (software
 * Vulkan runs a workgroup's threads as SIMD lanes on one core, where the register tile
 * already keeps every core busy and barriers are costly), reduced with subgroups where
 * the adapter has them; `smallk` for `k <= 16` (the unrolled loop of an output-bound
 * product); the workgroup-memory tile for aligned products of at least 64 in every
 * dimension on hardware adapters, and on software adapters (not SwiftShader) for aligned
 * products with `k >= 8192` or at least 1024 in every dimension (measured on lavapipe:
 * below that the wide register tile wins); else the register tile.
 */
export function chooseMatmulVariant(
  m: number,
  k: number,
  n: number,
  softwareAdapter = false,
  workgroupStorageBytes = 16384,
  slowShaderCompiler = false,
  subgroups = false,
): MatmulVariant {
  if (override === 'simple') return override;
  const aligned = m % 4 === 0 && n % 4 === 0 && k % 4 === 0;
  // SwiftShader takes minutes to compile the guarded tile; its tiny alternative compiles at once.
  if (slowShaderCompiler && !aligned && k > SMALL_K_MAX && override === null) return 'simple';
  const splitKFits = n <= SPLIT_K_MAX_N && splitKStorageBytes(n) <= workgroupStorageBytes;
  // An override applies where its variant is defined (split-k needs n <= 8, small-k k <= 16).
  if (override === 'splitk' && splitKFits) return override;
  if (override === 'subgroup' && splitKFits && subgroups) return override;
  if (override === 'smallk' && k <= SMALL_K_MAX) return override;
  if (override === 'shared' && sharedStorageBytes(SHARED_TILE) <= workgroupStorageBytes) return override;
  if (override === 'tile') return override;
  if (!softwareAdapter && splitKFits && k >= SPLIT_K_MIN_K && Math.ceil(m / 4) * Math.ceil(n / 4) < SPLIT_K_MAX_TILES) return subgroups ? 'subgroup' : 'splitk';
  if (k <= SMALL_K_MAX) return 'smallk';
  if (!softwareAdapter && !slowShaderCompiler && aligned && Math.min(m, n, k) >= SHARED_MIN_DIM && sharedStorageBytes(SHARED_TILE) <= workgroupStorageBytes) return 'shared';
  const longOrLarge = k >= SOFTWARE_SHARED_MIN_K || Math.min(m, n, k) >= SOFTWARE_SHARED_MIN_DIM;
  if (softwareAdapter && !slowShaderCompiler && aligned && n > SPLIT_K_MAX_N && longOrLarge && sharedStorageBytes(SOFTWARE_SHARED_TILE) <= workgroupStorageBytes) return 'shared';
  return 'tile';
}

/**
 * The configuration of a heuristic variant for a layout. `softwareTiles` (lavapipe-like
 * adapters with a fast shader compiler) selects the 8 x 8-per-thread tiles, which keep
 * more of each load in registers on a CPU's SIMD lanes.
 */
export function variantConfig(variant: MatmulVariant, aligned: boolean, n: number, softwareTiles = false): MatmulConfig {
  switch (variant) {
    case 'simple':
      return { kind: 'simple' };
    case 'splitk':
      return { kind: 'splitk', subgroups: false };
    case 'subgroup':
      return { kind: 'splitk', subgroups: true };
    case 'smallk':
      return { kind: 'smallk', tile: SMALL_K_TILE };
    case 'shared':
      return { kind: 'shared', tile: softwareTiles ? SOFTWARE_SHARED_TILE : SHARED_TILE };
    case 'tile':
      return { kind: 'tile', tile: !aligned ? GUARDED_TILE : n <= SPLIT_K_MAX_N ? NARROW_TILE : softwareTiles ? WIDE_TILE : TILE };
  }
}


/** Where one operand's matrices lie: element offset, element strides per batch dim, leading dimension (stride of the non-unit axis). */
export interface OperandPlacement {
  readonly offset: number;
  readonly batchStrides: readonly number[];
  readonly ld: number;
}

/** A batched product `C = op(A) op(B)` with each operand and the output placed in its buffer. */
export interface MatmulProblem {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly batchShape: readonly number[];
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  readonly a: OperandPlacement;
  readonly b: OperandPlacement;
  /** The output's placement; its columns have unit stride. */
  readonly c: OperandPlacement;
  readonly outShape: readonly number[];
}

/** The problem of `MatMul` / `MatMulAdd` on row-major operands: batch strides broadcast, leading dimensions the last dims. */
function contiguousProblem(a: Tensor, b: Tensor, transposeA: boolean, transposeB: boolean): MatmulProblem {
  const { m, k, n, batchShape } = matmulShapes(a.shape, b.shape, transposeA, transposeB);
  const scaled = (s: number[], by: number) => s.map((x) => x * by);
  return {
    m,
    k,
    n,
    batchShape,
    transposeA,
    transposeB,
    a: { offset: 0, batchStrides: scaled(broadcastStrides(a.shape.slice(0, -2), batchShape), m * k), ld: transposeA ? m : k },
    b: { offset: 0, batchStrides: scaled(broadcastStrides(b.shape.slice(0, -2), batchShape), k * n), ld: transposeB ? k : n },
    c: { offset: 0, batchStrides: scaled(stridesOf(batchShape), m * n), ld: n },
    outShape: [...batchShape, m, n],
  };
}

/** Whether every offset, stride and leading dimension of a placement is a multiple of 4 elements (vec4 loads stay aligned). */
function vec4Placement(p: OperandPlacement, batchShape: readonly number[]): boolean {
  return p.offset % 4 === 0 && p.ld % 4 === 0 && p.batchStrides.every((s, d) => s % 4 === 0 || batchShape[d] === 1);
}

/**
 * The configuration of one product: a forced configuration or variant (tests, the
 * tuner), else the autotuner's recorded choice for the shape class when autotuning is
 * on, else the heuristic.
 */
function pickConfig(ctx: WebGpuKernelContext, l: MatmulLayout, p: { m: number; k: number; n: number }, batch: number, dtype: string, d: MatmulDeviceClass): MatmulConfig {
  if (configOverride && configFits(configOverride, p, d)) return configOverride;
  // The class key is built only while autotuning is on: no strings per dispatch otherwise.
  if (override === null && autotuneEnabled()) {
    const cls = shapeClassKey(p, batch, dtype, l);
    const tuned = tunedConfig(adapterKey(ctx.adapterInfo), cls);
    if (tuned && configFits(tuned, p, d)) return tuned;
    noteUntuned(cls, p, batch, dtype, l);
  }
  const { software, swiftShader } = ctx.adapterKind;
  const variant = chooseMatmulVariant(p.m, p.k, p.n, software, d.workgroupStorageBytes, swiftShader, d.subgroups);
  return variantConfig(variant, l.aligned, p.n, software && !swiftShader);
}

/**
 * One batched product on the chosen variant: `C = op(A) op(B)`, or with an `epilogue`
 * (`MatMulAdd`, contiguous output only) `alpha * op(A) op(B)`, plus the addend `D`
 * (`[n]` or the output's shape) for `row` / `full`, applied as each output block is
 * stored. Operands are read at their placements, so views need no copy.
 */
export function runMatmul(
  ctx: WebGpuKernelContext,
  inputs: readonly Tensor[],
  pr: MatmulProblem,
  epilogue?: { kind: MatmulEpilogue; alpha: number },
): Tensor {
  const [a] = inputs;
  const { m, k, n, batchShape, transposeA, transposeB } = pr;
  checkRank('matmul', [...batchShape, m, n]);
  checkF16(ctx, 'matmul', inputs.map((t) => t.dtype));
  const out = ctx.output(pr.outShape, a.dtype, 'matmul');
  const batch = batchShape.reduce((p, d) => p * d, 1);
  if (out.size === 0) return out;
  const layout: MatmulLayout = {
    transposeA,
    transposeB,
    aligned: m % 4 === 0 && n % 4 === 0 && k % 4 === 0 && vec4Placement(pr.a, batchShape) && vec4Placement(pr.b, batchShape) && vec4Placement(pr.c, batchShape),
    batchRank: batchShape.length,
    half: a.dtype === 'f16',
    ...(epilogue ? { epilogue: epilogue.kind } : {}),
  };
  const problem = { m, k, n };
  const device: MatmulDeviceClass = {
    workgroupStorageBytes: ctx.limits.maxComputeWorkgroupStorageSize,
    maxInvocations: ctx.limits.maxComputeInvocationsPerWorkgroup,
    subgroups: ctx.capabilities.subgroups,
  };
  const config = pickConfig(ctx, layout, problem, batch, a.dtype, device);
  // Batches beyond the per-dimension workgroup limit go in several dispatches (offset b0).
  for (let b0 = 0; b0 < batch; b0 += MAX_WORKGROUPS_PER_DIM) {
    const chunk = Math.min(MAX_WORKGROUPS_PER_DIM, batch - b0);
    const u = new Uniforms()
      .arr('bshape', batchShape)
      .arr('sa', pr.a.batchStrides)
      .arr('sb', pr.b.batchStrides)
      .arr('sc', pr.c.batchStrides)
      .u32('m', m)
      .u32('k', k)
      .u32('n', n)
      .u32('b0', b0)
      .u32('oa', pr.a.offset)
      .u32('ob', pr.b.offset)
      .u32('oc', pr.c.offset)
      .u32('lda', pr.a.ld)
      .u32('ldb', pr.b.ld)
      .u32('ldc', pr.c.ld);
    if (epilogue) u.f32('alpha', epilogue.alpha);
    const { spec, wg } = buildMatmul(config, layout, u, problem, chunk);
    ctx.dispatch(program(spec.key, matmulInputCount(layout), 1, spec.source), inputs, [out], u, wg);
  }
  return out;
}

/** Registers the webgpu matmul kernels (variants chosen per shape class): `MatMul` and `MatMulAdd`. */
export function registerWebGpuMatmulKernels(): void {
  registerKernel('MatMul', 'webgpu', (inputs, { transposeA, transposeB }, ctx) => runMatmul(ctx, inputs, contiguousProblem(inputs[0], inputs[1], transposeA, transposeB)));
  registerKernel('MatMulAdd', 'webgpu', (inputs, { transposeA, transposeB, alpha }, ctx) => {
    const addend = inputs[2];
    // The shape checks of `matmulAdd` ran already; a `[n]` addend is a bias row, any other the full output.
    const kind: MatmulEpilogue = addend === undefined ? 'scale' : addend.rank === 1 ? 'row' : 'full';
    return runMatmul(ctx, inputs, contiguousProblem(inputs[0], inputs[1], transposeA, transposeB), { kind, alpha });
  });
}
