import { type MatmulConfig, type MatmulProblem, parseConfigId } from './configs.js';
import type { MatmulLayout } from './wgsl.js';

/**
 * The autotuner's state: whether tuned choices are used, where they persist, the
 * choices per adapter and shape class, and the classes dispatched without a choice
 * (what `tuneMatmul()` with no argument tunes). Kernel dispatch only reads this
 * (synchronously); the timing lives in `tune.ts`.
 */

/** Options of {@link configureMatmulAutotune}. */
export interface MatmulAutotuneOptions {
  /**
   * Use the tuned configuration of a product's shape class where one is recorded
   * (default false: the fixed heuristic, the same kernels on every run).
   */
  autotune?: boolean;
  /**
   * Node: directory of the persisted choices (`matmul-tune.json`), default the
   * `WEBPEFT_MATMUL_TUNE_DIR` environment variable; `null` keeps choices in memory only.
   * Browsers persist in `localStorage` when it exists, whatever this says (unless `null`).
   */
  cacheDir?: string | null;
}

/** A shape class dispatched while autotuning was on but with no recorded choice. */
export interface UntunedClass {
  readonly key: string;
  readonly problem: MatmulProblem;
  readonly batch: number;
  readonly dtype: string;
  readonly transposeA: boolean;
  readonly transposeB: boolean;
}

let enabled = false;
let cacheDir: string | null | undefined;
/** `adapter key -> shape class -> config id`. */
const choices = new Map<string, Map<string, string>>();
const untuned = new Map<string, UntunedClass>();

/** Sets the autotuner's options (see {@link MatmulAutotuneOptions}); omitted fields keep their value. */
export function setAutotuneOptions(o: MatmulAutotuneOptions): void {
  if (o.autotune !== undefined) enabled = o.autotune;
  if (o.cacheDir !== undefined) cacheDir = o.cacheDir;
}

/** Whether tuned choices are used. */
export function autotuneEnabled(): boolean {
  return enabled;
}

/** The persistence directory option: a path, `null` (memory only) or undefined (the environment's default). */
export function autotuneCacheDir(): string | null | undefined {
  return cacheDir;
}

/** The key of an adapter in the cache: vendor, architecture, device and description. */
export function adapterKey(info: GPUAdapterInfo): string {
  return [info.vendor, info.architecture, info.device, info.description].join('|');
}

/** Power-of-two bucket of a size (0 stays 0): sizes in one bucket share a tuned choice. */
export function sizeBucket(x: number): number {
  return x <= 1 ? x : 2 ** Math.ceil(Math.log2(x));
}

/**
 * Shape class of one product: dtype, transposes, alignment (vec4 or guarded loads) and
 * power-of-two buckets of m, k, n and the batch, e.g. `f32/01/v4/m1024k1024n1024b1`.
 */
export function shapeClassKey(p: MatmulProblem, batch: number, dtype: string, l: Pick<MatmulLayout, 'transposeA' | 'transposeB' | 'aligned'>): string {
  return `${dtype}/${+l.transposeA}${+l.transposeB}/${l.aligned ? 'v4' : 's'}/m${sizeBucket(p.m)}k${sizeBucket(p.k)}n${sizeBucket(p.n)}b${sizeBucket(batch)}`;
}

/** The recorded choice for a class on an adapter while autotuning is on, else null. */
export function tunedConfig(adapter: string, cls: string): MatmulConfig | null {
  if (!enabled) return null;
  const id = choices.get(adapter)?.get(cls);
  return id === undefined ? null : parseConfigId(id);
}

/** Remembers a class dispatched without a choice while autotuning is on (for `tuneMatmul()`). */
export function noteUntuned(key: string, problem: MatmulProblem, batch: number, dtype: string, l: Pick<MatmulLayout, 'transposeA' | 'transposeB'>): void {
  if (!enabled || untuned.has(key)) return;
  untuned.set(key, { key, problem, batch, dtype, transposeA: l.transposeA, transposeB: l.transposeB });
}

/** Classes seen without a choice, and forgets them (the tuner takes them). */
export function takeUntuned(): UntunedClass[] {
  const all = [...untuned.values()];
  untuned.clear();
  return all;
}

/** The choices recorded for an adapter (a copy). */
export function adapterChoices(adapter: string): Record<string, string> {
  return Object.fromEntries(choices.get(adapter) ?? []);
}

/** Records choices for an adapter; ids that name no known configuration are dropped (stale persisted entries). */
export function recordChoices(adapter: string, entries: Record<string, string>): void {
  let map = choices.get(adapter);
  if (!map) choices.set(adapter, (map = new Map<string, string>()));
  for (const [cls, id] of Object.entries(entries)) {
    if (typeof id === 'string' && parseConfigId(id)) map.set(cls, id);
  }
}

/** Forgets every choice and untuned class in memory (tests); persisted files are untouched. */
export function clearAutotuneMemory(): void {
  choices.clear();
  untuned.clear();
}
