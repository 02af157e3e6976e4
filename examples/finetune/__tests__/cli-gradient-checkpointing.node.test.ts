/**
 * `--gradient-checkpointing` in the fine-tuning CLI: the same run with and without it
 * trains to the same losses (the gradients are bit-identical, so every printed loss
 * matches) while the peak activation bytes it reports fall. Node only: the corpus
 * package reads its files from disk.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '@webpeft/quant';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseOptions } from '../src/options.js';
import { runFinetune } from '../src/run.js';

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

/** One short QLoRA run (with LoRA dropout); its log lines and per-step progress. */
async function run(extra: string[]): Promise<{ lines: string[]; losses: string[] }> {
  const out = mkdtempSync(join(tmpdir(), 'finetune-ckpt-'));
  const lines: string[] = [];
  const progress: string[] = [];
  const args = ['--steps', '3', '--warmup', '1', '--batch', '4', '--dropout', '0.1', '--eval-batches', '1', '--max-new-tokens', '2', '--corpus-chars', '20000', '--out', out, ...extra];
  await runFinetune(args, { log: (l) => lines.push(l), progress: { isTTY: true, write: (t: string) => progress.push(t) } });
  const losses = progress.filter((p) => p.includes('train [')).map((u) => /loss (\d+\.\d+)/.exec(u)![1]);
  return { lines, losses };
}

const activationsMiB = (lines: string[]) => Number(/activations ([\d.]+) MiB/.exec(lines.find((l) => l.startsWith('Peak memory while training:'))!)![1]);
const evalLine = (lines: string[]) => lines.find((l) => l.startsWith('Eval loss:'));

describe('npm run finetune -- --gradient-checkpointing', () => {
  it('is a switch, off by default', () => {
    expect(parseOptions([])!.gradientCheckpointing).toBe(false);
    expect(parseOptions(['--gradient-checkpointing'])!.gradientCheckpointing).toBe(true);
  });

  it('trains to the same losses with fewer activation bytes', async () => {
    const plain = await run([]);
    const ckpt = await run(['--gradient-checkpointing']);
    expect(ckpt.lines).toContain('Gradient checkpointing: on (each decoder layer keeps only its input and is recomputed in backward)');
    expect(plain.losses).toHaveLength(3);
    expect(ckpt.losses).toEqual(plain.losses);
    expect(evalLine(ckpt.lines)).toBe(evalLine(plain.lines));
    expect(activationsMiB(ckpt.lines)).toBeLessThan(activationsMiB(plain.lines));
  });
});
