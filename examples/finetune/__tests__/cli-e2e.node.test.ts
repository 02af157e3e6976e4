/**
 * The fine-tuning CLI end to end on the embedded default model (QLoRA, the default
 * method), on a smaller budget than the default run: every report line is printed, the
 * held-out loss falls, the samples change and do not collapse onto one token, and the
 * adapter files are written. Node only: the corpus package reads its files from disk.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { Tokenizer, openSource } from '@webpeft/nn';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '@webpeft/quant';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { OptionError } from '../src/options.js';
import { runFinetune } from '../src/run.js';

const PROMPT = 'Mr. Speaker, Mr. Vice President, members of Congress,';

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

/** Share of the most frequent token among `ids`. */
function topShare(ids: number[]): number {
  const counts = new Map<number, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return Math.max(...counts.values()) / ids.length;
}

describe('npm run finetune', () => {
  it('rejects a bad option before loading anything, printing nothing', async () => {
    const lines: string[] = [];
    await expect(runFinetune(['--rank', '0'], { log: (l) => lines.push(l), progress: { write: () => true } })).rejects.toBeInstanceOf(OptionError);
    expect(lines).toEqual([]);
  });

  it('fine-tunes the default model with QLoRA and reports what changed', async () => {
    const out = mkdtempSync(join(tmpdir(), 'finetune-e2e-'));
    const lines: string[] = [];
    const progress: string[] = [];
    const steps = 8;
    await runFinetune(['--steps', String(steps), '--eval-batches', '1', '--max-new-tokens', '24', '--corpus-chars', '60000', '--out', out], {
      log: (l) => lines.push(l),
      // A TTY gets one update per step.
      progress: { isTTY: true, write: (t: string) => progress.push(t) },
    });
    const line = (re: RegExp) => {
      const found = lines.find((l) => re.test(l));
      expect(found, `a line matching ${re} in:\n${lines.join('\n')}`).toBeDefined();
      return re.exec(found!)!;
    };
    line(/^Model: @webpeft\/default-model \(llama, [\d,]+ parameters, [\d.]+ MiB as f32\)/);
    line(/^Quantized \d+ linear layers to NF4 \+ double quant: [\d.]+ MiB -> [\d.]+ MiB$/);
    line(/^Trainable parameters: [\d,]+ of [\d,]+ \([\d.]+%\), adapter [\d.]+ MiB as f32$/);
    const updates = progress.filter((p) => p.includes('train ['));
    expect(updates).toHaveLength(steps);
    const losses = updates.map((u) => Number(/loss (\d+\.\d+)/.exec(u)![1]));
    expect(losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(new Set(losses).size, 'a fresh loss every step').toBeGreaterThan(1);

    const [, a, b] = line(/^Eval loss: (\d+\.\d+) -> (\d+\.\d+) \(-?[\d.]+%\)$/);
    expect(Number(b)).toBeLessThan(Number(a));
    const [, pa, pb] = line(/^Perplexity: ([\d.]+) -> ([\d.]+)$/);
    expect(Number(pa)).toBeCloseTo(Math.exp(Number(a)), -1);
    expect(Number(pb)).toBeLessThan(Number(pa));
    line(/^Trained 8 steps \([\d,]+ tokens\) in [\d.]+s: \d+ tokens\/s$/);
    line(/^Peak memory while training: [\d.]+ MiB; by tag: .*weights [\d.]+ MiB.*activations [\d.]+ MiB.*quant [\d.]+ MiB/);

    const before = JSON.parse(line(/^Sample before: (".*")$/)[1]) as string;
    const after = JSON.parse(line(/^Sample after: (".*")$/)[1]) as string;
    expect(before.startsWith(PROMPT) && after.startsWith(PROMPT)).toBe(true);
    expect(after).not.toBe(before);
    const tokenizer = await Tokenizer.fromSource(openSource(DEFAULT_MODEL_URL));
    for (const s of [before, after]) {
      const ids = tokenizer.encode(s.slice(PROMPT.length), { addSpecialTokens: false });
      expect(ids.length).toBeGreaterThan(10);
      expect(topShare(ids), s).toBeLessThanOrEqual(0.3);
    }

    line(/^Adapter saved in PEFT format to .*\(adapter_config\.json, adapter_model\.safetensors [\d.]+ MiB\)$/);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { peft_type: string; r: number };
    expect(config).toMatchObject({ peft_type: 'LORA', r: 16 });
    line(/^Done in [\d.]+s$/);
  }, 600_000);
});
