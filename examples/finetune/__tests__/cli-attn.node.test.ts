/**
 * `--attn fused` in the fine-tuning CLI: the default model (LLaMA family, no attention
 * dropout) trains with the fused attention kernels to the eager run's losses (the printed
 * four decimals), and an unknown value is refused. Node only: the corpus package reads
 * its files from disk.
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

/** One short LoRA run; its log lines and per-step losses. */
async function run(extra: string[]): Promise<{ lines: string[]; losses: string[] }> {
  const out = mkdtempSync(join(tmpdir(), 'finetune-attn-'));
  const lines: string[] = [];
  const progress: string[] = [];
  const args = ['--steps', '2', '--warmup', '1', '--batch', '2', '--eval-batches', '1', '--max-new-tokens', '2', '--corpus-chars', '20000', '--out', out, ...extra];
  await runFinetune(args, { log: (l) => lines.push(l), progress: { isTTY: true, write: (t: string) => progress.push(t) } });
  const losses = progress.filter((p) => p.includes('train [')).map((u) => /loss (\d+\.\d+)/.exec(u)![1]);
  return { lines, losses };
}

describe('npm run finetune -- --attn', () => {
  it('is eager by default, takes fused, and refuses anything else', () => {
    expect(parseOptions([])!.attn).toBe('eager');
    expect(parseOptions(['--attn', 'fused'])!.attn).toBe('fused');
    expect(() => parseOptions(['--attn', 'flash'])).toThrow(/--attn/);
  });

  it('trains with fused attention to the eager losses', async () => {
    const eager = await run([]);
    const fused = await run(['--attn', 'fused']);
    expect(fused.lines).toContain('Attention: fused (memory-efficient kernels, no [B, H, T, L] scores stored)');
    expect(eager.losses).toHaveLength(2);
    expect(fused.losses).toEqual(eager.losses);
  }, 600_000);
});
