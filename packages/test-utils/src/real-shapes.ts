/**
 * The cache of checkpoints with the exact shapes of released models (SmolLM2-135M,
 * Qwen2.5-0.5B, GPT-2 small; seeded random weights) that `tools/golden/real_shapes.py`
 * writes, too large to commit. Node only (it reads the file system): import it from
 * `@webpeft/test-utils/real-shapes` in `*.node.test.ts` files.
 *
 * A missing or stale cache fails the test in CI (`CI=true`, where the real-shapes step of
 * `.ci/run` builds it first) and with `WEBPEFT_REAL_SHAPES=1`; elsewhere the test is
 * skipped with the command that builds it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The models of the cache, named as their folders. */
export type RealShapeModel = 'smollm2-135m' | 'qwen2.5-0.5b' | 'gpt2';

/**
 * A checkpoint folder: float32 or bfloat16 (the same values: the weights are
 * bf16-representable), in one file or in several shards with an index. The cache holds
 * only the variants the tests read: {@link REAL_SHAPE_VARIANTS}.
 */
export type RealShapeVariant = 'f32' | 'bf16' | 'f32-sharded' | 'bf16-sharded';

/** The variants `tools/golden/real_shapes.py` writes for each model (its `VARIANTS`). */
export const REAL_SHAPE_VARIANTS: Readonly<Record<RealShapeModel, readonly RealShapeVariant[]>> = {
  'smollm2-135m': ['bf16', 'f32-sharded'],
  gpt2: ['f32'],
  'qwen2.5-0.5b': ['bf16-sharded'],
};

/** Every model of the cache. */
export const REAL_SHAPE_MODELS: readonly RealShapeModel[] = ['smollm2-135m', 'qwen2.5-0.5b', 'gpt2'];

/** The part of a test context this helper needs (vitest's `TestContext` has it). */
export interface SkippableContext {
  skip(note?: string): never | void;
}

/** Thrown in CI (or with `WEBPEFT_REAL_SHAPES=1`) when the cache is missing or stale: never a skip there. */
export class RealShapesMissingError extends Error {
  override name = 'RealShapesMissingError';
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SCRIPT = 'tools/golden/real_shapes.py';
/** The command that builds the cache (from the repository root). */
export const REAL_SHAPES_COMMAND = `.venv-golden/bin/python ${SCRIPT}`;

/** Where the cache lives: `$WEBPEFT_REAL_SHAPES_DIR`, default `.cache/real-shapes` at the repository root. */
export function realShapesDir(): string {
  return process.env.WEBPEFT_REAL_SHAPES_DIR || join(REPO_ROOT, '.cache', 'real-shapes');
}

interface Manifest {
  script: string;
  models: string[];
  files: Record<string, number>;
}

/** SHA-256 of the generator and its helpers, as the script computes it for its manifest. */
function scriptHash(): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(REPO_ROOT, SCRIPT)));
  h.update(readFileSync(join(REPO_ROOT, 'tools/golden/common.py')));
  return h.digest('hex');
}

/**
 * Why `model`'s `variant` folder cannot be used (no manifest, a manifest of another version
 * of the script, a file missing or of the wrong size), or null when it can.
 */
export function realShapeProblem(model: RealShapeModel, variant: RealShapeVariant): string | null {
  const dir = realShapesDir();
  const manifestFile = join(dir, 'manifest.json');
  if (!existsSync(manifestFile)) return `no real-shape checkpoint cache at ${dir} (no manifest.json)`;
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
  } catch (e) {
    return `${manifestFile} is not valid JSON: ${(e as Error).message}`;
  }
  if (manifest.script !== scriptHash()) return `the cache at ${dir} was written by another version of ${SCRIPT}`;
  const prefix = `${model}/${variant}/`;
  const files = Object.entries(manifest.files ?? {}).filter(([rel]) => rel.startsWith(prefix));
  if (files.length === 0) return `${manifestFile} lists no files for ${model}/${variant}`;
  for (const [rel, size] of files) {
    const p = join(dir, rel);
    if (!existsSync(p)) return `${p} is missing`;
    const actual = statSync(p).size;
    if (actual !== size) return `${p} has ${actual} bytes, the manifest says ${size}`;
  }
  return null;
}

/**
 * Whether a missing cache fails the test instead of skipping it with the command that
 * builds it: in CI (`CI=true` or `CI=1`, as `.ci/run` sets it and builds the cache
 * first; the same rule vitest.config.ts uses for a missing WebGPU adapter) and with
 * `WEBPEFT_REAL_SHAPES=1`.
 */
export function realShapesRequired(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1' || process.env.WEBPEFT_REAL_SHAPES === '1';
}

/**
 * The folder of `model`'s `variant` checkpoint (`config.json` and safetensors, as
 * transformers' `save_pretrained` wrote them), for `fromPretrained`.
 *
 * When the cache is missing or stale: in CI or with `WEBPEFT_REAL_SHAPES=1` throws
 * {@link RealShapesMissingError}; elsewhere skips the calling test through `ctx.skip`
 * with the command that builds it.
 * @example
 * it('loads SmolLM2-135M-shaped f32 shards', async (ctx) => {
 *   const { model } = await fromPretrained(realShapeCheckpoint('smollm2-135m', 'f32-sharded', ctx));
 * });
 */
export function realShapeCheckpoint(model: RealShapeModel, variant: RealShapeVariant, ctx: SkippableContext): string {
  const problem = realShapeProblem(model, variant);
  if (problem === null) return join(realShapesDir(), model, variant);
  const message = `${problem}; build it with \`${REAL_SHAPES_COMMAND}\` (see tools/golden/README.md)`;
  if (realShapesRequired()) throw new RealShapesMissingError(`the real-shape checkpoints are required in CI and with WEBPEFT_REAL_SHAPES=1: ${message}`);
  console.warn(`skipped: ${message}`);
  ctx.skip(message);
  // ctx.skip throws in vitest; a context whose skip returns must not get a folder.
  throw new RealShapesMissingError(message);
}
