/**
 * Checks made before any model is loaded, so a run never trains for minutes and then
 * fails, or overwrites what it did not write: the `--model` folder has a `config.json`,
 * `--out` is (or can be made) a writable folder, no output file or checkpoint the run
 * would write exists unless `--overwrite`, and a `--resume` checkpoint exists and was
 * made with the same options. Every failure is an {@link OptionError} naming the option.
 */
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type CheckpointManifest, CHECKPOINT_FILES, fileCheckpointStore, readCheckpointManifest } from '@webpeft/trainer';
import { checkResumeOptions } from './checkpointing.js';
import { type FinetuneOptions, OptionError } from './options.js';

/** What the run starts from, found by {@link preflight}. */
export interface RunPlan {
  /** The checkpoint folder to continue from and its manifest; null when starting afresh. */
  resume: { dir: string; manifest: CheckpointManifest } | null;
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException).code;
const reason = (e: unknown) => (e as Error).message;
const statOrNull = (path: string) =>
  stat(path).catch((e: unknown) => {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return null;
    throw e;
  });

/** A `--model` value the loader resolves itself (a URL, or an `org/name` Hub id that is not a local path). */
const isRemote = (model: string) => /^https?:\/\//i.test(model) || /^[\w.-]+\/[\w.-]+$/.test(model);

/** Runs every check; returns the resume point. Throws {@link OptionError} naming the option and the path. */
export async function preflight(opts: FinetuneOptions): Promise<RunPlan> {
  await checkModel(opts.model);
  const resume = opts.resume === null ? null : await findResume(opts.resume, opts);
  await checkOut(opts, resume ? resume.manifest.step : 0);
  return { resume };
}

async function checkModel(model: string | null): Promise<void> {
  if (model === null) return;
  const st = await statOrNull(model);
  if (!st) {
    if (isRemote(model)) return;
    throw new OptionError(`--model ${model}: no such folder (give a Hugging Face checkpoint folder with config.json, or an http(s) URL)`);
  }
  if (!st.isDirectory()) throw new OptionError(`--model ${model}: is a file; --model needs a checkpoint folder (config.json, model.safetensors, tokenizer.json)`);
  if (!(await statOrNull(join(model, 'config.json')))) {
    throw new OptionError(`--model ${model}: no config.json in that folder, so it is not a Hugging Face checkpoint (nothing is trained or written over it)`);
  }
}

/** The checkpoint folder `--resume` names: itself, or its latest `checkpoint-<step>` sub-folder. */
async function findResume(path: string, opts: FinetuneOptions): Promise<{ dir: string; manifest: CheckpointManifest }> {
  const st = await statOrNull(path);
  if (!st) throw new OptionError(`--resume ${path}: no such folder`);
  if (!st.isDirectory()) throw new OptionError(`--resume ${path}: is a file; --resume needs a checkpoint folder`);
  let dir = path;
  if (!(await statOrNull(join(path, CHECKPOINT_FILES.manifest)))) {
    const steps = (await readdir(path))
      .map((n) => /^checkpoint-(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
    const latest = [];
    for (const s of steps) if (await statOrNull(join(path, `checkpoint-${s}`, CHECKPOINT_FILES.manifest))) latest.push(s);
    if (latest.length === 0) throw new OptionError(`--resume ${path}: not a trainer checkpoint (no ${CHECKPOINT_FILES.manifest}) and holds no checkpoint-<step> folder with one`);
    dir = join(path, `checkpoint-${latest[0]}`);
  }
  let manifest: CheckpointManifest;
  try {
    manifest = await readCheckpointManifest(fileCheckpointStore(), dir);
  } catch (e) {
    throw new OptionError(`--resume: ${reason(e)}`);
  }
  checkResumeOptions(dir, manifest, opts);
  return { dir, manifest };
}

/** Files the run writes into `--out` at the end. */
export function finalOutputs(opts: FinetuneOptions): string[] {
  return opts.method === 'full' ? ['model.safetensors'] : ['adapter_config.json', 'adapter_model.safetensors'];
}

async function checkOut(opts: FinetuneOptions, startStep: number): Promise<void> {
  const out = opts.out;
  const flag = `--out ${out}`;
  const st = await statOrNull(out);
  if (st && !st.isDirectory()) throw new OptionError(`${flag}: is a file; --out needs a folder`);
  if (!st) await makeDirs(out, flag);
  // A probe file: permissions, read-only mounts and pseudo file systems all show here.
  const probe = join(out, `.webpeft-write-check-${process.pid}`);
  try {
    await access(out, constants.W_OK);
    await (await open(probe, 'wx')).close();
    await unlink(probe);
  } catch (e) {
    throw new OptionError(`${flag}: not writable (${reason(e)})`);
  }
  const taken: string[] = [];
  for (const f of finalOutputs(opts)) if (await statOrNull(join(out, f))) taken.push(f);
  if (opts.saveEvery > 0) {
    for (const n of await readdir(out)) {
      const m = /^checkpoint-(\d+)$/.exec(n);
      const step = m ? Number(m[1]) : -1;
      if (step > startStep && step % opts.saveEvery === 0) taken.push(n);
    }
  }
  if (taken.length > 0 && !opts.overwrite) {
    throw new OptionError(`${flag}: ${taken.join(', ')} already exist${taken.length === 1 ? 's' : ''} there and this run would replace ${taken.length === 1 ? 'it' : 'them'}; pass --overwrite to allow that, or choose another --out`);
  }
}

/**
 * Creates `dir` and its missing parents one level at a time. Not `mkdir -p`: Node's
 * recursive mkdir never returns for a path under a pseudo file system such as `/proc`;
 * one level at a time fails at once.
 */
async function makeDirs(dir: string, flag: string): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    const st = await statOrNull(p);
    if (st) {
      if (!st.isDirectory()) throw new OptionError(`${flag}: ${p} is a file, so the folder cannot be created`);
      break;
    }
    missing.push(p);
    if (dirname(p) === p) break;
  }
  try {
    for (const p of missing.reverse()) await mkdir(p);
  } catch (e) {
    throw new OptionError(`${flag}: cannot create the folder (${reason(e)})`);
  }
}
