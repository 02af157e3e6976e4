/**
 * The CLI loses nothing and resumes exactly. Checks that happen before any model is
 * loaded run through `main` (fast, no training): a `--model` folder without config.json,
 * unwritable or file-shaped `--out`, files the run did not create, bad `--resume`
 * folders, each one line and exit code 2. One short run with `--save-every` is then
 * resumed from its checkpoint: the losses of the remaining steps are bit-identical.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '@webpeft/quant';
import { initBackends } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, oneLine } from '../src/cli.js';
import { parseOptions } from '../src/options.js';
import { preflight } from '../src/preflight.js';
import { runFinetune } from '../src/run.js';

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

const root = mkdtempSync(join(tmpdir(), 'finetune-resume-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = { log: () => {}, progress: { write: () => true } };

/** Runs the CLI; returns its exit code, error lines and report lines. */
async function cli(argv: string[]): Promise<{ code: number; errors: string[]; lines: string[] }> {
  const errors: string[] = [];
  const lines: string[] = [];
  const code = await main(argv, { log: (l) => lines.push(l), progress: { write: () => true }, error: (l) => errors.push(l) });
  return { code, errors, lines };
}

/** Expects a refusal before anything was loaded: exit 2, one `error:` line matching `pattern`, no report line. */
async function expectRefused(argv: string[], pattern: RegExp): Promise<void> {
  const r = await cli(argv);
  expect(r.code, r.errors.join('\n')).toBe(2);
  expect(r.errors).toHaveLength(1);
  expect(r.errors[0]).not.toContain('\n');
  expect(r.errors[0]).toMatch(/^error: /);
  expect(r.errors[0]).toMatch(pattern);
  expect(r.lines).toEqual([]);
}

describe('finetune CLI: checks before anything is loaded', () => {
  it('a --model folder without config.json is an error, and nothing in it changes', async () => {
    const dir = join(root, 'not-a-model');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors'), 'user bytes');
    await expectRefused(['--model', dir, '--out', dir], /--model .*not-a-model: no config.json in that folder/);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    expect(readFileSync(join(dir, 'model.safetensors'), 'utf8')).toBe('user bytes');
    await expectRefused(['--model', join(root, 'nope', 'model')], /--model .*nope\/model: no such folder/);
    await expectRefused(['--model', join(dir, 'model.safetensors')], /--model .*model.safetensors: is a file/);
  });

  it('--out: a file, a path under /proc and an unwritable folder fail at once', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    await expectRefused(['--out', file], /^error: --out .*a-file: is a file; --out needs a folder$/);
    await expectRefused(['--out', join(file, 'sub')], /--out .*a-file\/sub: .*a-file is a file, so the folder cannot be created/);
    const t0 = Date.now();
    await expectRefused(['--out', '/proc/x/y'], /^error: --out \/proc\/x\/y: cannot create the folder \(ENOENT/);
    await expectRefused(['--out', '/proc'], /^error: --out \/proc: not writable \(/);
    expect(Date.now() - t0, 'fails fast').toBeLessThan(5000);
  });

  it('never replaces files it did not create without --overwrite', async () => {
    const out = join(root, 'taken');
    mkdirSync(join(out, 'checkpoint-4'), { recursive: true });
    writeFileSync(join(out, 'adapter_model.safetensors'), 'earlier adapter');
    await expectRefused(['--method', 'lora', '--out', out], /--out .*taken: adapter_model.safetensors already exists there and this run would replace it; pass --overwrite/);
    await expectRefused(['--method', 'lora', '--out', out, '--save-every', '2'], /adapter_model.safetensors, checkpoint-4 already exist there and this run would replace them/);
    expect(readFileSync(join(out, 'adapter_model.safetensors'), 'utf8')).toBe('earlier adapter');
    // Other methods write other files; --overwrite allows replacing.
    await expect(preflight(parseOptions(['--method', 'full', '--out', out])!)).resolves.toEqual({ resume: null });
    await expect(preflight(parseOptions(['--method', 'lora', '--out', out, '--save-every', '2', '--overwrite'])!)).resolves.toEqual({ resume: null });
    await expect(preflight(parseOptions(['--method', 'lora', '--out', out, '--save-every', '3', '--overwrite'])!)).resolves.toEqual({ resume: null });
    expect(readdirSync(out).sort(), 'the write probe is gone').toEqual(['adapter_model.safetensors', 'checkpoint-4']);
  });

  it('--resume needs a checkpoint; --epochs and --steps are exclusive', async () => {
    await expectRefused(['--resume', join(root, 'missing')], /--resume .*missing: no such folder/);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await expectRefused(['--resume', empty], /--resume .*empty: not a trainer checkpoint \(no trainer_state.json\) and holds no checkpoint-<step> folder with one/);
    const broken = join(root, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'trainer_state.json'), '{ "format": ');
    await expectRefused(['--resume', broken], /--resume: .*broken\/trainer_state.json: not valid JSON/);
    await expectRefused(['--epochs', '1', '--steps', '5'], /--epochs and --steps are exclusive/);
  });

  it('an error past the checks prints one line with a hint; --debug prints the stack', async () => {
    const dir = join(root, 'bad-config');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert' }));
    const plain = await cli(['--model', dir, '--backend', 'cpu', '--out', join(root, 'bad-config-out')]);
    expect(plain.code).toBe(1);
    expect(plain.errors).toHaveLength(1);
    expect(plain.errors[0]).toMatch(/^error: .*model_type "bert" is not supported.* \(--debug prints the stack trace\)$/);
    expect(plain.errors[0]).not.toMatch(/\n|\bat /);
    const debug = await cli(['--model', dir, '--backend', 'cpu', '--out', join(root, 'bad-config-out'), '--debug']);
    expect(debug.code).toBe(1);
    expect(debug.errors[0]).toMatch(/model_type "bert" is not supported[^]*\n\s+at /);
    expect(oneLine(new Error('loadStateDict: 2 problem(s):\n  missing: a\n  unexpected: b'))).toBe('loadStateDict: 2 problem(s): missing: a; unexpected: b');
  });
});

describe('finetune CLI: --save-every and --resume', () => {
  it('a resumed run trains the remaining steps with bit-identical losses; other options are refused by name', async () => {
    const first = join(root, 'run-a');
    const second = join(root, 'run-b');
    // LoRA dropout on: the resume must restore the RNG; warmup + cosine: the scheduler.
    const common = ['--method', 'lora', '--backend', 'webgpu', '--steps', '4', '--warmup', '1', '--rank', '4', '--dropout', '0.1', '--batch', '2', '--seq-len', '16', '--eval-batches', '1', '--max-new-tokens', '2', '--corpus-chars', '20000'];
    const a = (await runFinetune([...common, '--save-every', '2', '--out', first], quiet))!;
    expect(a).toMatchObject({ steps: 4, startStep: 0 });
    expect(readdirSync(first).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'checkpoint-2', 'checkpoint-4']);
    expect(readdirSync(join(first, 'checkpoint-2')).sort()).toEqual(['optimizer.safetensors', 'trainer_state.json', 'weights.safetensors']);

    const lines: string[] = [];
    const b = (await runFinetune([...common, '--resume', join(first, 'checkpoint-2'), '--out', second], { ...quiet, log: (l) => lines.push(l) }))!;
    expect(lines).toContain(`Resumed from ${join(first, 'checkpoint-2')} after step 2 of 4`);
    expect(b.startStep).toBe(2);
    expect(b.losses, `losses of steps 3..4 (steps 1..2: ${a.losses.slice(0, 2).join(', ')})`).toEqual(a.losses.slice(2));
    expect(readFileSync(join(second, 'adapter_model.safetensors'))).toEqual(readFileSync(join(first, 'adapter_model.safetensors')));

    // A folder of checkpoints resumes from the latest; other training options are named.
    const plan = await preflight(parseOptions([...common, '--resume', first, '--out', join(root, 'run-c')])!);
    expect(plan.resume!.dir).toBe(join(first, 'checkpoint-4'));
    await expectRefused(
      [...common.map((v) => (v === '4' ? '8' : v)), '--lr', '0.02', '--resume', join(first, 'checkpoint-2'), '--out', join(root, 'run-d')],
      /--resume .*checkpoint-2: the checkpoint was made with other options: --rank 4 \(this run: 8\), --lr 0\.01 \(this run: 0\.02\), --steps 4 \(this run: 8\); resume with the same options/,
    );
    // A damaged checkpoint is refused when it is loaded, naming the file; the run frees what it built.
    const damaged = join(root, 'damaged');
    cpSync(join(first, 'checkpoint-2'), damaged, { recursive: true });
    const weights = readFileSync(join(damaged, 'weights.safetensors'));
    weights[weights.length - 5] ^= 0x40;
    writeFileSync(join(damaged, 'weights.safetensors'), weights);
    const refused = await cli([...common, '--resume', damaged, '--out', join(root, 'run-f')]);
    expect(refused.code).toBe(1);
    expect(refused.errors).toEqual([expect.stringMatching(/^error: .*damaged\/weights.safetensors: CRC-32 is \d+, the manifest records \d+ \(a corrupted or replaced file\) \(--debug prints the stack trace\)$/)]);
    expect(readdirSync(join(root, 'run-f')), 'nothing written').toEqual([]);

    // --epochs: the steps follow from the training tokens the run reports.
    const epochLines: string[] = [];
    const short = common.filter((_, i) => common[i] !== '--steps' && common[i - 1] !== '--steps');
    const e = (await runFinetune([...short, '--epochs', '0.02', '--out', join(root, 'run-e')], { ...quiet, log: (l) => epochLines.push(l) }))!;
    const tokens = Number(/^Data: .*, ([\d,]+) training tokens/.exec(epochLines.find((l) => l.startsWith('Data: '))!)![1].replace(/,/g, ''));
    expect(e.steps).toBe(Math.ceil((0.02 * tokens) / (2 * 16)));
    expect(e.losses).toHaveLength(e.steps);
    // Running the first command again into the same folder would replace its files.
    await expectRefused([...common, '--save-every', '2', '--out', first], /adapter_config.json, adapter_model.safetensors, checkpoint-2, checkpoint-4 already exist there/);
  }, 300_000);

  it('with --data, the shuffled order and position of the SFT sampler resume too', async () => {
    const data = fileURLToPath(new URL('../data/moby-dick-qa.jsonl', import.meta.url));
    const first = join(root, 'sft-a');
    // batch 8 over the file's training rows: the run crosses an epoch boundary (a reshuffle) after the checkpoint.
    const common = ['--data', data, '--method', 'lora', '--backend', 'webgpu', '--steps', '4', '--warmup', '1', '--rank', '4', '--dropout', '0.1', '--batch', '8', '--seq-len', '48', '--eval-batches', '1', '--max-new-tokens', '2'];
    const a = (await runFinetune([...common, '--save-every', '2', '--out', first], quiet))!;
    const c = (await runFinetune([...common, '--resume', join(first, 'checkpoint-2'), '--out', join(root, 'sft-c')], quiet))!;
    expect(c.losses).toEqual(a.losses.slice(2));
    const manifest = JSON.parse(readFileSync(join(first, 'checkpoint-2', 'trainer_state.json'), 'utf8')) as { dataPosition: { order: number[]; pos: number } };
    expect(manifest.dataPosition.pos).toBeGreaterThan(0);
    expect([...manifest.dataPosition.order].sort((x, y) => x - y)).toEqual(manifest.dataPosition.order.map((_, i) => i));
  }, 300_000);
});
