/**
 * `--data`: the CLI fine-tunes on an SFT file (prompt/completion JSONL shipped in
 * examples/finetune/data, packed, completion-only loss), and a malformed file is refused
 * naming the file and line before a model is loaded. A few steps only: this checks the
 * path end to end, the default run's test checks how well training works.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { runFinetune } from '../src/run.js';

const QA = fileURLToPath(new URL('../data/moby-dick-qa.jsonl', import.meta.url));
const quiet = { write: () => true };

beforeAll(async () => {
  await initBackends();
});

describe('npm run finetune -- --data FILE', () => {
  it('refuses a malformed line naming the file and line, before loading a model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-sft-'));
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"prompt": "Q: a?", "completion": " b"}\n{"prompt": "Q: c?", "completion": 3}\n');
    const lines: string[] = [];
    await expect(runFinetune(['--data', file], { log: (l) => lines.push(l), progress: quiet })).rejects.toThrow(`${file}:2: "completion" must be a string, got number`);
    expect(lines).toEqual([]);
  });

  it('trains on prompt/completion data, packed, with the loss on completions', async () => {
    const out = mkdtempSync(join(tmpdir(), 'finetune-sft-'));
    const lines: string[] = [];
    const progress: string[] = [];
    const argv = ['--data', QA, '--packing', '--method', 'lora', '--steps', '3', '--warmup', '1', '--batch', '2', '--eval-batches', '1', '--max-new-tokens', '8'];
    await runFinetune([...argv, '--prompt', 'Question: Who is the captain of the Pequod?\nAnswer:', '--out', out], {
      log: (l) => lines.push(l),
      progress: { isTTY: true, write: (t: string) => progress.push(t) },
    });
    const line = (re: RegExp) => {
      const found = lines.find((l) => re.test(l));
      expect(found, `a line matching ${re} in:\n${lines.join('\n')}`).toBeDefined();
      return re.exec(found!)!;
    };
    // 24 records: the last 10% (2) held out.
    line(/^Data: .*moby-dick-qa\.jsonl \(prompt_completion\), 22 training samples, 2 held out \(last 10%\), packed \(bfd\) into \d+ rows of <= 64 tokens, loss on completion only$/);
    const losses = progress.filter((p) => p.includes('train [')).map((u) => Number(/loss (\d+\.\d+)/.exec(u)![1]));
    expect(losses).toHaveLength(3);
    expect(losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    const [, a, b] = line(/^Eval loss: (\d+\.\d+) -> (\d+\.\d+) \(-?[\d.]+%\)$/);
    expect(Number(b)).toBeLessThan(Number(a));
    line(/^Adapter saved in PEFT format to /);
  }, 120_000);
});
