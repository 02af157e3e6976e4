/**
 * The CLI's `--data` preparation (no model): held-out split, loss choice per format,
 * packing strategies, the epoch sampler, and refusals that name the file or option.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { Tokenizer, openSource } from '@webpeft/nn';
import { beforeAll, describe, expect, it } from 'vitest';
import golden from '../../../packages/nn/src/__tests__/fixtures/sft/sft_golden.json' with { type: 'json' };
import { type SftDataOptions, prepareSftData, readSftFile } from '../src/sft-data.js';

const QA = fileURLToPath(new URL('../data/moby-dick-qa.jsonl', import.meta.url));
const CHAT = fileURLToPath(new URL('../data/moby-dick-chat.jsonl', import.meta.url));
const base: SftDataOptions = { seqLen: 64, batch: 4, evalBatches: 2, packing: false, packingStrategy: 'bfd', seed: 0 };
let tok: Tokenizer;
beforeAll(async () => {
  tok = await Tokenizer.fromSource(openSource(DEFAULT_MODEL_URL));
});

describe('--data preparation', () => {
  it('holds out the last 10% and trains on completions of prompt/completion data by default', () => {
    const data = prepareSftData(readSftFile(QA, null, 'auto'), tok, base);
    expect(data.summary).toMatch(/22 training samples, 2 held out \(last 10%\), truncated to 64 tokens, loss on completion only$/);
    expect(data.evalSet).toHaveLength(1);
    const b = data.evalSet[0];
    expect(b.batchSize).toBe(2);
    // The held-out prompts are masked: the first label of each row is -100.
    expect(b.labels[0]).toBe(-100);
    expect(b.labels[b.seqLen]).toBe(-100);
    const full = prepareSftData(readSftFile(QA, null, 'false'), tok, base);
    expect(full.summary).toMatch(/loss on every token$/);
    expect(full.evalSet[0].labels[0]).toBe(full.evalSet[0].inputIds[0]);
  });

  it('the sampler visits every training row once per epoch, in a seeded order', () => {
    const take = (seed: number) => {
      const data = prepareSftData(readSftFile(QA, null, 'auto'), tok, { ...base, batch: 5, seed });
      const firsts: number[][] = [];
      for (let i = 0; i < 5; i++) {
        const b = data.sampler.next();
        for (let r = 0; r < b.batchSize; r++) firsts.push(Array.from(b.inputIds.subarray(r * b.seqLen, r * b.seqLen + 12)));
      }
      return { firsts, epochs: data.sampler.epochs };
    };
    const a = take(0);
    // 22 rows in batches of 5: 5 + 5 + 5 + 5 + 2, one epoch.
    expect(a.firsts).toHaveLength(22);
    expect(new Set(a.firsts.map((f) => f.join(','))).size).toBe(22);
    expect(a.epochs).toBe(0);
    expect(take(0).firsts).toEqual(a.firsts);
    expect(take(1).firsts).not.toEqual(a.firsts);
  });

  it('packing: bfd rows carry a per-query mask and positions, wrapped rows are plain sequences', () => {
    const bfd = prepareSftData(readSftFile(QA, null, 'auto'), tok, { ...base, packing: true });
    const b = bfd.sampler.next();
    expect(b.attentionMask!.length).toBe(b.batchSize * b.seqLen * b.seqLen);
    expect(b.positionIds).toBeDefined();
    const wrapped = prepareSftData(readSftFile(QA, null, 'auto'), tok, { ...base, packing: true, packingStrategy: 'wrapped' });
    const w = wrapped.sampler.next();
    expect(w.attentionMask!.length).toBe(w.batchSize * w.seqLen);
    expect(w.positionIds).toBeUndefined();
  });

  it('chat data: every token by default; assistant turns only with a {% generation %} template', () => {
    expect(prepareSftData(readSftFile(CHAT, null, 'auto'), tok, { ...base, seqLen: 128 }).summary).toMatch(/\(messages\), 11 training samples, 1 held out .*loss on every token$/);
    expect(() => prepareSftData(readSftFile(CHAT, null, 'true'), tok, base)).toThrow(/moby-dick-chat\.jsonl:1: assistantOnlyLoss needs a chat template with \{% generation %\}/);
    const dir = mkdtempSync(join(tmpdir(), 'finetune-sft-data-'));
    const template = join(dir, 'qwen2.5-training.jinja');
    writeFileSync(template, golden.templates['qwen2.5-training']);
    const data = prepareSftData(readSftFile(CHAT, template, 'true'), tok, { ...base, seqLen: 128 });
    expect(data.summary).toMatch(/loss on assistant turns only$/);
    const e = data.evalSet[0];
    const targets = Array.from(e.labels.subarray(0, e.seqLen)).filter((l) => l !== -100);
    // The held-out (last) conversation's two assistant turns, as the Qwen2.5 training template marks them.
    expect(tok.decode(targets)).toBe('\nTo drive off the spleen and the damp, drizzly November in his soul.<|im_end|>\n\nThe white whale sinks the Pequod and only Ishmael survives.<|im_end|>\n');
  });

  it('refuses what it cannot train on, naming the file or option', () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-sft-data-'));
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'Call me Ishmael.\nSome years ago.\n');
    expect(() => readSftFile(text, null, 'true')).toThrow(/^--completion-only true: .*notes\.txt holds plain text records/);
    const one = join(dir, 'one.jsonl');
    writeFileSync(one, '{"text": "only one"}\n');
    expect(() => readSftFile(one, null, 'auto')).toThrow(/one\.jsonl: 1 record; at least 2 are needed/);
    expect(() => readSftFile(join(dir, 'missing.jsonl'), null, 'auto')).toThrow(/^--data .*missing\.jsonl: ENOENT/);
    expect(() => readSftFile(QA, join(dir, 'missing.jinja'), 'auto')).toThrow(/^--chat-template .*missing\.jinja: ENOENT/);
  });
});
