/**
 * The safetensors fuzz corpus (`fixtures/io/safetensors_fuzz.json`, written by
 * `tools/golden/safetensors_fuzz.py` from a file `safetensors.torch.save` wrote): our
 * reader's verdict equals that of the Rust reader in `safetensors` 0.8 on every file
 * except the documented stricter cases, and every rejection is a `SafetensorsError`
 * naming the file (never a raw TypeError/RangeError/SyntaxError). Accepted files decode.
 */
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError, parseSafetensors, rawToTensor } from '../index.js';
import corpus from './fixtures/io/safetensors_fuzz.json' with { type: 'json' };
import { fromBase64 } from './io-helpers.js';

beforeAll(async () => {
  await initBackends();
});

/** Files the Rust reader accepts and we reject, with the reason. */
const STRICTER: Record<string, string> = {
  'duplicate tensor name': 'a JSON object with a repeated key keeps one value silently (serde and JSON.parse alike); the other tensor would vanish',
  'F8_E8M0 dtype (newer than the format we read)': 'a dtype this reader cannot decode is rejected when the file is read, not when the tensor is',
  'F4 dtype (newer than the format we read)': 'a dtype this reader cannot decode is rejected when the file is read, not when the tensor is',
};

interface Case {
  label: string;
  verdict: 'accepted' | 'rejected';
  error?: string;
  base64: string;
}

const cases = corpus.cases as Case[];
const FILE = 'fuzz.safetensors';

/** Our verdict on one file: 'a' (parsed and decoded) or 'r' (a SafetensorsError naming the file); anything else throws. */
function verdictOf(bytes: Uint8Array): 'a' | 'r' {
  try {
    const { tensors } = parseSafetensors(bytes, FILE);
    for (const [key, raw] of tensors) rawToTensor(raw, { key, backend: 'cpu', keepF64: true }).dispose();
    return 'a';
  } catch (error) {
    if (!(error instanceof SafetensorsError) || !error.message.startsWith(`${FILE}: `)) throw error;
    return 'r';
  }
}

describe('safetensors fuzz corpus: verdicts against safetensors 0.8', () => {
  it(`covers ${cases.length} mutated files`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(50);
    expect(corpus.versions.safetensors).toBe('0.8.0');
    for (const key of Object.keys(STRICTER)) expect(cases.some((c) => c.label === key), key).toBe(true);
  });

  for (const c of cases) {
    it(c.label, () => {
      let verdict: 'accepted' | 'rejected' = 'accepted';
      try {
        const { tensors } = parseSafetensors(fromBase64(c.base64), FILE);
        // Accepted tensors decode (on cpu) without error.
        for (const [key, raw] of tensors) rawToTensor(raw, { key, backend: 'cpu', keepF64: true }).dispose();
      } catch (error) {
        verdict = 'rejected';
        expect(error, String(error)).toBeInstanceOf(SafetensorsError);
        expect((error as Error).message.startsWith(`${FILE}: `), (error as Error).message).toBe(true);
      }
      const reason = STRICTER[c.label];
      if (reason) {
        expect(c.verdict, `${c.label} is listed as stricter, so the reference accepts it`).toBe('accepted');
        expect(verdict, `${c.label}: ${reason}`).toBe('rejected');
      } else {
        expect(verdict, `${c.label}: safetensors ${c.verdict}${c.error ? ` (${c.error})` : ''}`).toBe(c.verdict);
      }
    });
  }

  it(`the base file cut at each of its ${corpus.truncations.length} lengths: rejected, as by the reference`, () => {
    const base = fromBase64(corpus.base);
    const ours = Array.from({ length: base.length }, (_, k) => verdictOf(base.subarray(0, k))).join('');
    expect(ours).toBe(corpus.truncations);
  });

  it(`each of the ${corpus.headerFlips.length} header bytes replaced: the same verdict as the reference, byte by byte`, () => {
    const base = fromBase64(corpus.base);
    let ours = '';
    for (let i = 8; i < 8 + corpus.headerFlips.length; i++) {
      const file = base.slice();
      file[i] = file[i] === 0x78 ? 0x79 : 0x78; // 'x', or 'y' where it was 'x'
      ours += verdictOf(file);
    }
    const differ = [...ours].flatMap((v, i) => (v === corpus.headerFlips[i] ? [] : [`byte ${i + 8}: ours ${v}, reference ${corpus.headerFlips[i]}`]));
    expect(differ).toEqual([]);
  });
});
