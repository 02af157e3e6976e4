/**
 * `--fused-ce` in the fine-tuning CLI: the same LoRA run with and without it trains to
 * the same printed losses (the fused loss equals the unfused one within 1e-5 relative)
 * with fewer activation bytes at its peak (no `[batch, seq, vocab]` logits), and it is
 * refused, naming the fix, when the method puts an adapter on lm_head. Node only: the
 * corpus package reads its files from disk.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { OptionError, parseOptions } from '../src/options.js';
import { runFinetune } from '../src/run.js';

beforeAll(async () => {
  await initBackends();
});

/** One short LoRA run; its log lines and per-step losses as printed. */
async function run(extra: string[]): Promise<{ lines: string[]; losses: string[] }> {
  const out = mkdtempSync(join(tmpdir(), 'finetune-fused-ce-'));
  const lines: string[] = [];
  const progress: string[] = [];
  const args = ['--method', 'lora', '--steps', '3', '--warmup', '1', '--batch', '4', '--eval-batches', '1', '--max-new-tokens', '2', '--corpus-chars', '20000', '--out', out, ...extra];
  await runFinetune(args, { log: (l) => lines.push(l), progress: { isTTY: true, write: (t: string) => progress.push(t) } });
  const losses = progress.filter((p) => p.includes('train [')).map((u) => /loss (\d+\.\d+)/.exec(u)![1]);
  return { lines, losses };
}

const activationsMiB = (lines: string[]) => Number(/activations ([\d.]+) MiB/.exec(lines.find((l) => l.startsWith('Peak memory while training:'))!)![1]);

describe('npm run finetune -- --fused-ce', () => {
  it('is a switch, off by default', () => {
    expect(parseOptions([])!.fusedCe).toBe(false);
    expect(parseOptions(['--fused-ce'])!.fusedCe).toBe(true);
  });

  it('trains to the same losses with fewer activation bytes', async () => {
    const plain = await run(['--targets', 'all-linear']);
    const fused = await run(['--targets', 'all-linear', '--fused-ce']);
    expect(fused.lines).toContain('Fused cross-entropy: on (the loss over vocabulary chunks, no logits)');
    expect(plain.losses).toHaveLength(3);
    expect(fused.losses).toEqual(plain.losses);
    expect(activationsMiB(fused.lines)).toBeLessThan(activationsMiB(plain.lines));
  }, 600_000);

  it('is refused when the method puts an adapter on lm_head (the default targets)', async () => {
    const error = await run(['--fused-ce']).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OptionError);
    expect((error as Error).message).toMatch(/--fused-ce needs a plain Linear lm_head, but with --method lora it is a \w+: leave lm_head out of --targets/);
  }, 600_000);
});
