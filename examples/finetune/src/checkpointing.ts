/**
 * The CLI's trainer checkpoints (`--save-every`, `--resume`), in `@webpeft/trainer`'s
 * format: the trainable weights, the optimizer and scheduler, the global RNG, and as
 * data position the state of the window sampler. The options that shape the training
 * (model, method, hyperparameters, data, seed, backend) are stored too, so a resume with
 * other options is refused naming each difference: its losses could not match.
 */
import { join } from 'node:path';
import type { Module } from '@webpeft/nn';
import { type CheckpointManifest, type CheckpointOptimizer, type CheckpointScheduler, type JsonValue, fileCheckpointStore, loadCheckpoint, readCheckpointManifest, saveCheckpoint, trainableWeights } from '@webpeft/trainer';
import { type FinetuneOptions, OptionError } from './options.js';
import type { SeededRandom } from './seeded-random.js';

/**
 * Options that change what is printed or where it goes, not the training: they may
 * differ on resume. Gradient checkpointing changes memory only (the gradients are
 * bit-identical), so a run may be resumed with it switched either way.
 */
const FREE_ON_RESUME = new Set<string>(['out', 'resume', 'saveEvery', 'overwrite', 'debug', 'evalEvery', 'evalBatches', 'prompt', 'maxNewTokens', 'temperature', 'topP', 'nonFinite', 'gradientCheckpointing', 'fusedCe']);

const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The options a resumed run must share with the run that saved the checkpoint (every option not known to be free). */
export function trainingOptions(opts: FinetuneOptions): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(opts)) if (!FREE_ON_RESUME.has(k)) out[k] = v as JsonValue;
  return out;
}

/**
 * Throws an {@link OptionError} naming every option whose value differs from the one
 * the checkpoint in `dir` was made with (as `--flag saved (this run: value)`).
 */
export function checkResumeOptions(dir: string, manifest: CheckpointManifest, opts: FinetuneOptions): void {
  const saved = manifest.metadata.options;
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) {
    throw new OptionError(`--resume ${dir}: the checkpoint records no finetune options, so it was not made by this CLI`);
  }
  const now = trainingOptions(opts);
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])];
  const show = (v: JsonValue | undefined) => (v === undefined ? '(absent)' : Array.isArray(v) ? v.map((x) => JSON.stringify(x).replace(/^"|"$/g, '')).join(',') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  const diffs = keys.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k])).map((k) => `${flagOf(k)} ${show(saved[k])} (this run: ${show(now[k])})`);
  if (diffs.length > 0) {
    throw new OptionError(`--resume ${dir}: the checkpoint was made with other options: ${diffs.join(', ')}; resume with the same options, or start a new run`);
  }
}

/** A data stream's position as JSON: saved with a checkpoint, checked, then restored. */
export interface DataPosition {
  /** The position now (JSON). */
  save(): JsonValue;
  /** Throws naming the field unless `state` is a position this stream can take; changes nothing. */
  check(state: unknown): void;
  /** Moves the stream to `state` (checked first). */
  restore(state: unknown): void;
}

/** The run's training data as checkpoints and `--epochs` see it. */
export interface DataStream {
  /** Micro-batches per pass over the training data. */
  perEpoch: number;
  position: DataPosition;
}

/** The position of the random-window sampler of the default corpus: its generator's state. */
export function windowPosition(rng: SeededRandom): DataPosition {
  const check = (state: unknown): number => {
    const v = (state as { sampler?: unknown } | null)?.sampler;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`dataPosition.sampler must be an integer in [0, 2^32), got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    save: () => ({ sampler: rng.state }),
    check,
    restore: (state) => {
      rng.state = check(state);
    },
  };
}

/** What a checkpoint of the CLI holds besides the trainer's parts. */
export interface RunCheckpointState {
  trainable: Module;
  optimizer: CheckpointOptimizer;
  scheduler: CheckpointScheduler;
  data: DataPosition;
  step: number;
  epoch: number;
}

/** Folder of the checkpoint taken after `step` (Hugging Face Trainer's naming). */
export const checkpointDir = (out: string, step: number) => join(out, `checkpoint-${step}`);

/** Saves `<out>/checkpoint-<step>` atomically; returns its folder. */
export async function saveRunCheckpoint(opts: FinetuneOptions, s: RunCheckpointState): Promise<string> {
  const dir = checkpointDir(opts.out, s.step);
  await saveCheckpoint(
    fileCheckpointStore(),
    dir,
    { weights: trainableWeights(s.trainable), optimizer: s.optimizer, scheduler: s.scheduler, step: s.step, epoch: s.epoch, dataPosition: s.data.save(), metadata: { options: trainingOptions(opts) } },
    { overwrite: opts.overwrite },
  );
  return dir;
}

/** Restores checkpoint `dir` into the run's objects and data stream; returns the step it was taken after. Changes nothing when it throws. */
export async function restoreRun(dir: string, s: Omit<RunCheckpointState, 'step' | 'epoch'>): Promise<number> {
  const store = fileCheckpointStore();
  const position = (await readCheckpointManifest(store, dir)).dataPosition;
  try {
    s.data.check(position);
  } catch (e) {
    throw new OptionError(`--resume ${dir}: ${(e as Error).message}`);
  }
  const loaded = await loadCheckpoint(store, dir, { weights: trainableWeights(s.trainable), optimizer: s.optimizer, scheduler: s.scheduler });
  s.data.restore(position);
  return loaded.step;
}
