import { engine } from '../../../../engine.js';
import { cast } from '../../../../ops/layout.js';
import { rand } from '../../../../ops/creation.js';
import { matmul } from '../../../../ops/matmul.js';
import type { Tensor } from '../../../../tensor.js';
import type { WebGpuBackend } from '../../webgpu-backend.js';
import { setMatmulConfigOverride } from '../matmul.js';
import {
  type MatmulAutotuneOptions,
  adapterChoices,
  adapterKey,
  autotuneCacheDir,
  autotuneEnabled,
  recordChoices,
  setAutotuneOptions,
  shapeClassKey,
  takeUntuned,
} from './autotune.js';
import { type MatmulDeviceClass, candidateConfigs, configId, parseConfigId } from './configs.js';
import { loadChoices, saveChoices, tuneStoreTarget } from './tune-store.js';

/** One product to tune: `[batch, m, k] x [batch, k, n]` (as stored, before the transpose flags). */
export interface MatmulTuneProblem {
  m: number;
  k: number;
  n: number;
  /** Batch entries (default 1). */
  batch?: number;
  /** `f32` (default) or `f16` (needs `shader-f16`). */
  dtype?: 'f32' | 'f16';
  transposeA?: boolean;
  transposeB?: boolean;
}

/** What {@link tuneMatmul} decided for one shape class. */
export interface MatmulTuneResult {
  /** The shape class (dtype, transposes, alignment, power-of-two size buckets). */
  shapeClass: string;
  /** Id of the chosen configuration (e.g. `shared/16x8r8c4k16`). */
  chosen: string;
  /** Median milliseconds of each candidate timed now (empty when the choice was already recorded). */
  timings: { config: string; ms: number }[];
  /** True when the choice was recorded before (this process or the persisted cache). */
  cached: boolean;
}

/** Options of {@link tuneMatmul}. */
export interface MatmulTuneOptions {
  /** Timed runs per candidate after its warm-up (default 3; the median counts). */
  runs?: number;
  /** Re-time classes that already have a choice. */
  force?: boolean;
  /**
   * Only these configuration ids (as in {@link MatmulTuneResult.chosen}), e.g. to spare
   * a slow shader compiler the large kernels; default every candidate that fits.
   */
  candidates?: readonly string[];
}

/** Adapters whose persisted choices were read in this process. */
const loaded = new Set<string>();

function webgpu(what: string): WebGpuBackend {
  if (!engine.hasBackend('webgpu')) throw new Error(`${what}: the webgpu backend is not initialised (call init() first)`);
  return engine.getBackend('webgpu') as WebGpuBackend;
}

async function loadPersisted(adapter: string): Promise<void> {
  if (loaded.has(adapter)) return;
  recordChoices(adapter, await loadChoices(tuneStoreTarget(autotuneCacheDir()), adapter));
  loaded.add(adapter);
}

/**
 * Sets the matmul autotuner's options and, with `autotune: true`, reads the choices
 * persisted for the current adapter. With autotuning off (the default) every matmul
 * uses the fixed heuristic, so runs are deterministic.
 * @example
 * await configureMatmulAutotune({ autotune: true, cacheDir: '.cache/webpeft' });
 * await tuneMatmul([{ m: 4096, k: 768, n: 768, transposeB: true }]);
 */
export async function configureMatmulAutotune(options: MatmulAutotuneOptions): Promise<void> {
  if (options.cacheDir !== undefined && options.cacheDir !== null && typeof options.cacheDir !== 'string') {
    throw new TypeError(`configureMatmulAutotune: cacheDir must be a string or null, got ${typeof options.cacheDir}`);
  }
  const dir = options.cacheDir !== undefined ? options.cacheDir : autotuneCacheDir();
  const enable = options.autotune ?? autotuneEnabled();
  // Read first: a bad cache file leaves the previous options in force.
  let persisted: { adapter: string; entries: Record<string, string> } | null = null;
  if (enable) {
    const adapter = adapterKey(webgpu('configureMatmulAutotune').adapterInfo);
    if (options.cacheDir !== undefined || !loaded.has(adapter)) persisted = { adapter, entries: await loadChoices(tuneStoreTarget(dir), adapter) };
  }
  setAutotuneOptions(options);
  if (options.cacheDir !== undefined) loaded.clear();
  if (persisted) {
    recordChoices(persisted.adapter, persisted.entries);
    loaded.add(persisted.adapter);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Milliseconds of one synchronised product. */
async function timeOnce(a: Tensor, b: Tensor, tA: boolean, tB: boolean): Promise<number> {
  const t0 = performance.now();
  const c = matmul(a, b, { transposeA: tA, transposeB: tB });
  await engine.getBackend('webgpu').sync();
  const ms = performance.now() - t0;
  c.dispose();
  return ms;
}

/**
 * Times every candidate configuration of each problem's shape class once per adapter
 * and records the fastest (median of `runs` synchronised products after one warm-up
 * that compiles the pipeline). Classes with a recorded choice are skipped unless
 * `force`. Without `problems`, tunes the classes dispatched since autotuning was turned
 * on that had no choice. Choices are used while `autotune` is on and persist to the
 * cache (see {@link configureMatmulAutotune}).
 *
 * Timing is done on this adapter as it is loaded now: on a busy machine the choice is
 * only as good as the measurement.
 * @returns one result per distinct shape class.
 */
export async function tuneMatmul(problems?: readonly MatmulTuneProblem[], options: MatmulTuneOptions = {}): Promise<MatmulTuneResult[]> {
  const backend = webgpu('tuneMatmul');
  const runs = options.runs ?? 3;
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`tuneMatmul: runs must be a positive integer, got ${runs}`);
  const only = options.candidates?.map((id) => {
    const c = parseConfigId(id);
    if (!c) throw new RangeError(`tuneMatmul: unknown candidate configuration '${id}' (ids look like 'tile/8x8r8c4', 'shared/16x8r8c4k16', 'splitk', 'splitk/sg', 'simple')`);
    return configId(c);
  });
  const adapter = adapterKey(backend.adapterInfo);
  await loadPersisted(adapter);
  const list: Required<MatmulTuneProblem>[] = (
    problems ?? takeUntuned().map((u) => ({ ...u.problem, batch: u.batch, dtype: u.dtype as 'f32' | 'f16', transposeA: u.transposeA, transposeB: u.transposeB }))
  ).map((p) => ({ batch: 1, dtype: 'f32', transposeA: false, transposeB: false, ...p }));
  const device: MatmulDeviceClass = {
    workgroupStorageBytes: backend.limits.maxComputeWorkgroupStorageSize,
    maxInvocations: backend.limits.maxComputeInvocationsPerWorkgroup,
    subgroups: backend.capabilities.subgroups,
  };
  const results = new Map<string, MatmulTuneResult>();
  const fresh: Record<string, string> = {};
  for (const p of list) {
    for (const [name, v] of Object.entries({ m: p.m, k: p.k, n: p.n, batch: p.batch })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`tuneMatmul: ${name} must be a positive integer, got ${v}`);
    }
    if (p.dtype !== 'f32' && p.dtype !== 'f16') throw new TypeError(`tuneMatmul: dtype must be 'f32' or 'f16', got ${String(p.dtype)}`);
    const aligned = p.m % 4 === 0 && p.k % 4 === 0 && p.n % 4 === 0;
    const cls = shapeClassKey(p, p.batch, p.dtype, { transposeA: p.transposeA, transposeB: p.transposeB, aligned });
    if (results.has(cls)) continue;
    const known = adapterChoices(adapter)[cls];
    if (known !== undefined && !options.force) {
      results.set(cls, { shapeClass: cls, chosen: known, timings: [], cached: true });
      continue;
    }
    const aShape = [...(p.batch > 1 ? [p.batch] : []), ...(p.transposeA ? [p.k, p.m] : [p.m, p.k])];
    const bShape = [...(p.batch > 1 ? [p.batch] : []), ...(p.transposeB ? [p.n, p.k] : [p.k, p.n])];
    const make = (shape: number[]): Tensor => {
      const x = rand(shape, { backend: 'webgpu' });
      if (p.dtype === 'f32') return x;
      const h = cast(x, 'f16');
      x.dispose();
      return h;
    };
    const a = make(aShape);
    const b = make(bShape);
    const timings: { config: string; ms: number }[] = [];
    try {
      const cands = candidateConfigs(p, aligned, device).filter((c) => !only || only.includes(configId(c)));
      if (cands.length === 0) throw new RangeError(`tuneMatmul: no candidate configuration fits ${cls} (${only ? `of ${only.join(', ')}` : 'on this adapter'})`);
      for (const c of cands) {
        setMatmulConfigOverride(c);
        await timeOnce(a, b, p.transposeA, p.transposeB);
        const ms: number[] = [];
        for (let r = 0; r < runs; r++) ms.push(await timeOnce(a, b, p.transposeA, p.transposeB));
        timings.push({ config: configId(c), ms: median(ms) });
      }
    } finally {
      setMatmulConfigOverride(null);
      a.dispose();
      b.dispose();
    }
    const best = timings.reduce((x, y) => (y.ms < x.ms ? y : x));
    fresh[cls] = best.config;
    results.set(cls, { shapeClass: cls, chosen: best.config, timings, cached: false });
  }
  if (Object.keys(fresh).length > 0) {
    recordChoices(adapter, fresh);
    await saveChoices(tuneStoreTarget(autotuneCacheDir()), adapter, fresh);
  }
  return [...results.values()];
}
