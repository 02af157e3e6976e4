/** The studio's data path (nn's SFT pipeline), batch sampling and adapter zips (host code: no device). */
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { IGNORE_INDEX, type PackedExample, SftDataError, Tokenizer, openSource } from '@webpeft/nn';
import { unzipSync } from 'fflate';
import { beforeAll, describe, expect, it } from 'vitest';
import { MalformedFileError, RowSampler, parseData, prepareData, seededUniform } from '../src/data.ts';
import { SAMPLE_TEXT } from '../src/sample-text.ts';
import { filesFromPicked, zipFiles } from '../src/zip.ts';

/** The default model's tokenizer (byte-level BPE, eos = pad = <|endoftext|>). */
let tok: Tokenizer;
beforeAll(async () => {
  tok = await Tokenizer.fromSource(openSource(DEFAULT_MODEL_URL));
});

const EOS = () => tok.eosTokenId!;
const OPTIONS = { seqLen: 64, batch: 2, packing: false, completionOnly: 'auto', evalBatches: 4 } as const;
/** Ten prompt/completion records, so one (the last tenth) is held out. */
const QA = Array.from({ length: 10 }, (_, i) => JSON.stringify({ prompt: `Q: what is ${i} plus ${i}? `, completion: `A: ${2 * i}.` })).join('\n');

describe('parseData and prepareData (nn SFT pipeline)', () => {
  it('plain text: one sample per non-blank line, each with EOS, the last tenth held out', () => {
    const lines = SAMPLE_TEXT.split('\n').filter((l) => l.trim() !== '');
    const data = prepareData('sample.txt', SAMPLE_TEXT, tok, OPTIONS);
    const held = Math.max(1, Math.floor(lines.length * 0.1));
    expect(data.train).toHaveLength(lines.length - held);
    // TRL's text format: the text's ids, then EOS; every token a target; truncated to seqLen.
    const first = [...tok.encode(lines[0], { addSpecialTokens: false }), EOS()].slice(0, 64);
    expect(data.train[0]).toEqual({ inputIds: first, labels: first });
    const heldIds = [...tok.encode(lines[lines.length - held], { addSpecialTokens: false }), EOS()].slice(0, 64);
    expect(Array.from(data.evalSet[0].inputIds.subarray(0, heldIds.length))).toEqual(heldIds);
    expect(data.summary).toMatch(/^sample\.txt \(text\): 19 training samples, 2 held out \(last 10%\), truncated to 64 tokens, loss on every token$/);
  });

  it('prompt/completion JSON Lines: loss on the completion only by default, on every token when asked', () => {
    const data = prepareData('qa.jsonl', QA, tok, OPTIONS);
    expect(data.train).toHaveLength(9);
    const prompt = tok.encode('Q: what is 0 plus 0? ', { addSpecialTokens: false });
    const all = [...tok.encode('Q: what is 0 plus 0? A: 0.', { addSpecialTokens: false }), EOS()];
    expect(data.train[0].inputIds).toEqual(all);
    expect(data.train[0].labels).toEqual(all.map((id, i) => (i < prompt.length ? IGNORE_INDEX : id)));
    expect(prepareData('qa.jsonl', QA, tok, { ...OPTIONS, completionOnly: 'false' }).train[0].labels).toEqual(all);
    // A batch pads with the pad id and ignores the padding in the loss.
    const batch = data.collate([data.train[0], data.train[9 - 1]]);
    expect(batch.batchSize).toBe(2);
    const len0 = data.train[0].inputIds.length;
    const t = batch.seqLen;
    expect(Array.from(batch.attentionMask.subarray(0, t))).toEqual(Array.from({ length: t }, (_, i) => (i < len0 ? 1 : 0)));
    expect(Array.from(batch.labels.subarray(len0, t)).every((l) => l === IGNORE_INDEX)).toBe(true);
  });

  it('messages: each conversation rendered by the tokenizer\'s chat template, every token a target', () => {
    const conversations = Array.from({ length: 4 }, (_, i) => [
      { role: 'user', content: `hello ${i}` },
      { role: 'assistant', content: `hi ${i}` },
    ]);
    const data = prepareData('chat.jsonl', conversations.map((messages) => JSON.stringify({ messages })).join('\n'), tok, OPTIONS);
    const rendered = tok.applyChatTemplate(conversations[0], { tokenize: true }).slice(0, 64);
    expect(data.train[0]).toEqual({ inputIds: rendered, labels: rendered });
    expect(data.summary).toMatch(/^chat\.jsonl \(messages\): 3 training samples, 1 held out/);
  });

  it('packing: rows of at most seqLen tokens, samples kept whole, positions restarting per sample', () => {
    const data = prepareData('qa.jsonl', QA, tok, { ...OPTIONS, packing: true, seqLen: 32 });
    const lengths = Array.from({ length: 9 }, (_, i) => tok.encode(`Q: what is ${i} plus ${i}? A: ${2 * i}.`, { addSpecialTokens: false }).length + 1);
    const rowTokens = data.train.reduce((n, r) => n + r.inputIds.length, 0);
    expect(rowTokens).toBe(lengths.reduce((a, b) => a + b, 0));
    for (const r of data.train) expect(r.inputIds.length).toBeLessThanOrEqual(32);
    expect(data.train.length).toBeLessThan(9);
    const batch = data.collate(data.train.slice(0, 1));
    const seqLengths = (data.train[0] as PackedExample).seqLengths;
    const positions = seqLengths.flatMap((n) => Array.from({ length: n }, (_, i) => i));
    expect(Array.from(batch.positionIds!.subarray(0, positions.length))).toEqual(positions);
    expect(batch.attentionMask.length).toBe(batch.seqLen * batch.seqLen);
    expect(data.summary).toMatch(/packed into \d+ rows of <= 32 tokens, loss on completions only$/);
  });

  it('names the file and line of a malformed record, and refuses what it cannot train on', () => {
    expect(() => parseData('d.jsonl', '{"text":"ok"}\n{"text": oops}')).toThrow(SftDataError);
    expect(() => parseData('d.jsonl', '{"text":"ok"}\n{"text": oops}')).toThrow(/^d\.jsonl:2: not valid JSON/);
    expect(() => parseData('d.jsonl', '{"text":"ok"}\n{"title":"x","body":"y"}')).toThrow('d.jsonl:2: expected a "text", "prompt"+"completion" or "messages" field (keys: title, body)');
    expect(() => parseData('d.jsonl', '{"text":"ok"}\n{"prompt":"a","completion":"b"}')).toThrow(/^d\.jsonl:2: a \{"prompt","completion"\} record in a file whose first record is \{"text"\}/);
    expect(() => parseData('e.txt', '  \n')).toThrow('e.txt:1: no records (the file is empty or blank)');
    expect(() => parseData('one.txt', 'a single line')).toThrow(MalformedFileError);
    expect(() => parseData('one.txt', 'a single line')).toThrow('one.txt: 1 sample; at least 2 are needed');
    expect(() => prepareData('s.txt', 'line one\nline two', tok, { ...OPTIONS, completionOnly: 'true' })).toThrow(/^completion-only loss: s\.txt holds plain text samples/);
  });
});

describe('RowSampler', () => {
  it('visits every row once per pass in a seeded order, and the same seed gives the same batches', () => {
    const rows = Array.from({ length: 5 }, (_, i) => ({ inputIds: [i], labels: [i] }));
    const draw = (seed: number) => {
      const s = new RowSampler(rows, 2, seededUniform(seed));
      return Array.from({ length: 6 }, () => s.next().map((r) => r.inputIds[0]));
    };
    const a = draw(7);
    expect(draw(7)).toEqual(a);
    // Passes of 5 rows in batches of 2: 2 + 2 + 1, then a new shuffle.
    expect(a.map((b) => b.length)).toEqual([2, 2, 1, 2, 2, 1]);
    expect(a.slice(0, 3).flat().sort()).toEqual([0, 1, 2, 3, 4]);
    expect(a.slice(3).flat().sort()).toEqual([0, 1, 2, 3, 4]);
    expect(() => new RowSampler([], 2, seededUniform(0))).toThrow(/no training rows/);
  });

  it('seededUniform is mulberry32 (first outputs for seed 0, from its reference definition)', () => {
    // mulberry32(0): state += 0x6D2B79F5 per draw, then the xorshift-multiply mix, / 2^32.
    const reference = (seed: number, n: number) => {
      const out: number[] = [];
      let s = BigInt(seed);
      for (let i = 0; i < n; i++) {
        s = (s + 0x6d2b79f5n) & 0xffffffffn;
        const imul = (x: bigint, y: bigint) => (x * y) & 0xffffffffn;
        let t = s;
        t = imul(t ^ (t >> 15n), t | 1n);
        t = (t ^ (t + imul(t ^ (t >> 7n), t | 61n))) & 0xffffffffn;
        out.push(Number(t ^ (t >> 14n)) / 4294967296);
      }
      return out;
    };
    const u = seededUniform(0);
    expect([u(), u(), u()]).toEqual(reference(0, 3));
  });
});

describe('adapter zips', () => {
  it('zips files and reads them back from a picked zip (inside a folder) or loose files', async () => {
    const files = { 'adapter_config.json': new TextEncoder().encode('{"peft_type":"LORA"}'), 'adapter_model.safetensors': Uint8Array.from([1, 2, 3, 250]) };
    const zip = zipFiles(files);
    expect(unzipSync(zip)).toEqual(files);
    const nested = zipFiles({ 'run-1/adapter_config.json': files['adapter_config.json'], 'run-1/adapter_model.safetensors': files['adapter_model.safetensors'] });
    expect(await filesFromPicked([new File([nested as BlobPart], 'adapter.zip')])).toEqual(files);
    expect(await filesFromPicked([new File([files['adapter_config.json'] as BlobPart], 'adapter_config.json')])).toEqual({ 'adapter_config.json': files['adapter_config.json'] });
    await expect(filesFromPicked([new File(['not a zip'], 'broken.zip')])).rejects.toThrow(/^broken\.zip: not a readable zip file/);
  });
});
