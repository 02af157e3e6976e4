import { describe, expect, it } from 'vitest';
import {
  type PackingStrategy,
  SftDataError,
  type SftDataset,
  type TokenizeSftOptions,
  collatePacked,
  collateSft,
  packSft,
  parseSftData,
  tokenizeSft,
} from '../data/index.js';
import { GOLDEN, defaultTokenizer, sftCase } from './sft-fixture.js';

const tok = defaultTokenizer();
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const dataset = (kind: 'text' | 'prompt_completion' | 'messages'): SftDataset => parseSftData(`${kind}.jsonl`, jsonl(GOLDEN.samples[kind]));

/** 2-D rows of a flat `[B, T]` array. */
function rows2(a: Int32Array, b: number, t: number): number[][] {
  return Array.from({ length: b }, (_, r) => Array.from(a.subarray(r * t, (r + 1) * t)));
}

describe('parseSftData', () => {
  it('detects plain text, {"text"}, {"prompt","completion"} and {"messages"} per file', () => {
    expect(parseSftData('a.txt', 'one line\n\nanother line\n')).toMatchObject({
      format: 'text',
      records: [{ kind: 'text', text: 'one line' }, { kind: 'text', text: 'another line' }],
      lines: [1, 3],
    });
    expect(dataset('text').format).toBe('text');
    expect(dataset('prompt_completion').format).toBe('prompt_completion');
    expect(dataset('messages').format).toBe('messages');
    // JSON Lines is detected from the first line when the name says nothing.
    expect(parseSftData('data', '{"text": "a"}\n').records).toEqual([{ kind: 'text', text: 'a' }]);
  });

  it('a malformed line names the file and the 1-based line and what is wrong', () => {
    const bad: [string, RegExp][] = [
      ['{"text": "a"}\n{"text": "b"\n', /^d\.jsonl:2: not valid JSON/],
      ['{"text": "a"}\n\n{"text": 3}\n', /^d\.jsonl:3: "text" must be a string, got number/],
      ['{"text": "a"}\n{"prompt": "p", "completion": "c"}\n', /^d\.jsonl:2: a \{"prompt","completion"\} record in a file whose first record is \{"text"\}/],
      ['{"prompt": "p"}\n', /^d\.jsonl:1: .*needs both "prompt" and "completion"/],
      ['{"messages": []}\n', /^d\.jsonl:1: "messages" must be a non-empty array/],
      ['{"messages": [{"role": "user"}]}\n', /^d\.jsonl:1: messages\[0\]\.content must be a string, got nothing/],
      ['{"input": "x"}\n', /^d\.jsonl:1: expected a "text", "prompt"\+"completion" or "messages" field \(keys: input\)/],
      ['[1, 2]\n', /^d\.jsonl:1: expected a JSON object, got an array/],
      ['\n\n', /^d\.jsonl:1: no records/],
    ];
    for (const [text, re] of bad) {
      let err: unknown;
      try {
        parseSftData('d.jsonl', text);
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(SftDataError);
      expect((err as Error).message, text).toMatch(re);
    }
  });
});

/** TRL SFTConfig fields of a fixture case -> our options. */
function options(config: Record<string, unknown>): TokenizeSftOptions {
  return {
    maxLength: config.max_length as number,
    completionOnlyLoss: config.completion_only_loss as boolean | undefined,
    assistantOnlyLoss: config.assistant_only_loss as boolean | undefined,
    packing: config.packing as boolean | undefined,
  };
}

describe('tokenizeSft + collateSft equal TRL SFTTrainer dataset preparation and collator', () => {
  const cases: [string, 'text' | 'prompt_completion' | 'messages', string?][] = [
    ['text', 'text'],
    ['prompt_completion', 'prompt_completion'],
    ['prompt_completion_full_loss', 'prompt_completion'],
    ['messages', 'messages'],
    ['messages_assistant_only', 'messages', 'qwen2.5-training'],
  ];
  for (const [name, kind, template] of cases) {
    it(name, () => {
      const c = sftCase(name);
      const chatTemplate = template ? GOLDEN.templates[template] : undefined;
      const { examples } = tokenizeSft(dataset(kind), tok, { ...options(c.config), chatTemplate });
      expect(examples.map((e) => ({ input_ids: e.inputIds, labels: e.labels }))).toEqual(c.rows);
      const batch = collateSft(examples.slice(0, c.collated_rows), { padTokenId: tok.padTokenId! });
      const t = batch.seqLen;
      expect(rows2(batch.inputIds, batch.batchSize, t)).toEqual(c.batch.input_ids);
      expect(rows2(batch.labels, batch.batchSize, t)).toEqual(c.batch.labels);
      expect(rows2(batch.attentionMask, batch.batchSize, t)).toEqual(c.batch.attention_mask);
      expect(batch.targets).toBe(c.batch.labels.flat().filter((l) => l !== -100).length);
    });
  }

  it('reports what TRL drops: a prompt alone filling maxLength leaves no target', () => {
    const { examples, warnings } = tokenizeSft(dataset('prompt_completion'), tok, { maxLength: 32 });
    expect(examples).toHaveLength(GOLDEN.samples.prompt_completion.length - 1);
    expect(warnings).toEqual([expect.stringMatching(/1 sample\(s\) dropped: no target token left within maxLength 32/)]);
  });

  it('rejects loss options the data format cannot take, and templates without generation markers', () => {
    expect(() => tokenizeSft(dataset('text'), tok, { completionOnlyLoss: true })).toThrow(/completionOnlyLoss needs \{"prompt","completion"\} records; text\.jsonl holds text/);
    expect(() => tokenizeSft(dataset('text'), tok, { assistantOnlyLoss: true })).toThrow(/assistantOnlyLoss needs \{"messages"\}/);
    // The default ChatML template has no {% generation %} markers (TRL refuses it as well).
    expect(() => tokenizeSft(dataset('messages'), tok, { assistantOnlyLoss: true })).toThrow(/^messages\.jsonl:1: assistantOnlyLoss needs a chat template with \{% generation %\}/);
    expect(() => tokenizeSft(dataset('text'), tok, { maxLength: -1 })).toThrow(/maxLength must be a positive integer or null/);
  });
});

describe('packSft + collatePacked equal TRL packing and its padding-free collator', () => {
  const cases: [string, 'text' | 'prompt_completion', PackingStrategy][] = [
    ['text_packed_bfd', 'text', 'bfd'],
    ['prompt_completion_packed_bfd', 'prompt_completion', 'bfd'],
    ['text_packed_bfd_split', 'text', 'bfd_split'],
    ['text_packed_wrapped', 'text', 'wrapped'],
  ];
  for (const [name, kind, strategy] of cases) {
    it(name, () => {
      const c = sftCase(name);
      const seqLength = c.config.max_length as number;
      const { examples } = tokenizeSft(dataset(kind), tok, options(c.config));
      const packed = packSft(examples, seqLength, strategy);
      expect(packed.map((p) => ({ input_ids: p.inputIds, labels: p.labels }))).toEqual(c.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
      const first = packed.slice(0, c.collated_rows);
      if (strategy === 'wrapped') {
        // TRL collates wrapped rows as plain sequences (no padding-free, no boundaries).
        expect(c.rows[0].seq_lengths).toBeUndefined();
        const batch = collateSft(first, { padTokenId: tok.padTokenId! });
        expect(rows2(batch.inputIds, batch.batchSize, batch.seqLen)).toEqual(c.batch.input_ids);
        expect(rows2(batch.labels, batch.batchSize, batch.seqLen)).toEqual(c.batch.labels);
        expect(rows2(batch.attentionMask, batch.batchSize, batch.seqLen)).toEqual(c.batch.attention_mask);
        return;
      }
      expect(packed.map((p) => p.seqLengths)).toEqual(c.rows.map((r) => r.seq_lengths));
      // TRL flattens the batch into one row; ours keeps rows. Unpadded and concatenated they are the same.
      const batch = collatePacked(first, { padTokenId: tok.padTokenId! });
      const t = batch.seqLen;
      const cat = (a: Int32Array): number[] => first.flatMap((p, r) => Array.from(a.subarray(r * t, r * t + p.inputIds.length)));
      expect(cat(batch.inputIds)).toEqual(c.batch.input_ids[0]);
      expect(cat(batch.labels)).toEqual(c.batch.labels[0]);
      expect(cat(batch.positionIds!)).toEqual(c.batch.position_ids[0]);
      // Padding: pad id, label -100.
      first.forEach((p, r) => {
        for (let i = p.inputIds.length; i < t; i++) {
          expect(batch.inputIds[r * t + i]).toBe(tok.padTokenId);
          expect(batch.labels[r * t + i]).toBe(-100);
        }
      });
    });
  }

  it('collatePacked masks attention to the own sample: [B, T, T] block diagonal', () => {
    const batch = collatePacked([{ inputIds: [5, 6, 7, 8], labels: [5, 6, 7, 8], seqLengths: [3, 1] }, { inputIds: [9], labels: [9], seqLengths: [1] }], { padTokenId: 0 });
    const t = batch.seqLen;
    const m = Array.from({ length: 2 }, (_, r) => rows2(batch.attentionMask.subarray(r * t * t, (r + 1) * t * t), t, t));
    expect(m[0]).toEqual([
      [1, 1, 1, 0],
      [1, 1, 1, 0],
      [1, 1, 1, 0],
      [0, 0, 0, 1],
    ]);
    expect(m[1]).toEqual([
      [1, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ]);
    expect(Array.from(batch.labels)).toEqual([-100, 6, 7, -100, -100, -100, -100, -100]);
  });

  it('rejects bad packing input', () => {
    expect(() => packSft([{ inputIds: [1], labels: [1] }], 0)).toThrow(/seqLength must be a positive integer/);
    expect(() => packSft([{ inputIds: [1, 2], labels: [1] }], 4)).toThrow(/example 0 has 2 ids but 1 labels/);
    expect(() => packSft([{ inputIds: [1], labels: [1] }], 4, 'best' as PackingStrategy)).toThrow(/strategy must be/);
    expect(() => collatePacked([{ inputIds: [1, 2], labels: [1, 2], seqLengths: [1] }], { padTokenId: 0 })).toThrow(/seqLengths summing to 1/);
  });
});
