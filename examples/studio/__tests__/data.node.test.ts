/** The studio's data files, token windows and adapter zips (host code: no device). */
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { MalformedFileError, evalWindows, randomWindows, seededUniform, splitTokens, textFromFile } from '../src/data.ts';
import { filesFromPicked, zipFiles } from '../src/zip.ts';

describe('textFromFile', () => {
  it('reads .txt as is and joins the texts of .jsonl records', () => {
    expect(textFromFile('a.TXT', 'plain text\n')).toBe('plain text\n');
    const jsonl = ['{"text":"one"}', '', '{"prompt":"Q: 2+2? ","completion":"A: 4"}', '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}'].join('\n');
    expect(textFromFile('d.jsonl', jsonl)).toBe('one\n\nQ: 2+2? A: 4\n\nuser: hi\nassistant: hello');
  });

  it('names the file and line of what it cannot read', () => {
    expect(() => textFromFile('d.jsonl', '{"text":"ok"}\n{"text": oops}')).toThrow(MalformedFileError);
    expect(() => textFromFile('d.jsonl', '{"text":"ok"}\n{"text": oops}')).toThrow(/^d\.jsonl, line 2: not JSON/);
    expect(() => textFromFile('d.jsonl', '{"title":"x","body":"y"}')).toThrow('d.jsonl, line 1: no "text", "prompt"+"completion" or "messages" field (keys: title, body)');
    expect(() => textFromFile('d.jsonl', '[1,2]')).toThrow('d.jsonl, line 1: a record must be a JSON object');
    expect(() => textFromFile('d.jsonl', '{"messages":[{"role":"user"}]}')).toThrow('d.jsonl, line 1: messages[0] needs string "role" and "content"');
    expect(() => textFromFile('d.jsonl', '\n\n')).toThrow('d.jsonl: no records');
    expect(() => textFromFile('e.txt', '  \n')).toThrow('e.txt: the file is empty');
    expect(() => textFromFile('f.csv', 'a,b')).toThrow('f.csv: expected a .txt or .jsonl file');
  });
});

describe('token windows', () => {
  const ids = Int32Array.from({ length: 100 }, (_, i) => i);

  it('holds out the last tenth (at least one window) and refuses a text shorter than two windows', () => {
    const { train, held } = splitTokens(ids, 8);
    expect(Array.from(held)).toEqual(Array.from({ length: 10 }, (_, i) => 90 + i));
    expect(train.length).toBe(90);
    expect(splitTokens(ids, 20).held.length).toBe(20);
    expect(() => splitTokens(ids.subarray(0, 15), 8)).toThrow('the training text has 15 tokens: need more than 16 (one window of 9 to train on, 8 held out)');
  });

  it('takes consecutive eval windows and seeded random training windows', () => {
    const windows = evalWindows(ids, 2, 8, 10);
    expect(windows).toHaveLength(6); // 12 rows of 8, two per batch
    expect(Array.from(windows[1].inputIds)).toEqual(Array.from({ length: 16 }, (_, i) => 16 + i));
    expect(evalWindows(ids, 2, 8, 2)).toHaveLength(2);
    const a = randomWindows(ids, 3, 5, seededUniform(7));
    const b = randomWindows(ids, 3, 5, seededUniform(7));
    expect(a.inputIds).toEqual(b.inputIds);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(a.inputIds.subarray(r * 5, r * 5 + 5));
      // Each row is a contiguous run of the ids, inside the text.
      expect(row).toEqual(Array.from({ length: 5 }, (_, i) => row[0] + i));
      expect(row[4]).toBeLessThan(100);
    }
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
