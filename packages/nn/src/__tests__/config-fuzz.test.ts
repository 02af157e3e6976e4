/**
 * The config.json fuzz corpus (`fixtures/models/config_fuzz.json`, written by
 * `tools/golden/config_fuzz.py` from configs transformers saved for GPT-2, LLaMA, Qwen2
 * and Mistral): every mutated file must reach the verdict of transformers 5.18
 * (`AutoConfig.from_pretrained`, `AutoModelForCausalLM.from_config` and a forward pass),
 * except the documented stricter cases; a rejection is a `ConfigError` naming the file
 * and the field, and an accepted config gives finite logits.
 */
import { tensor } from '@webpeft/tensor';
import { type FuzzCase, initBackends, mutatedText, unclearError } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, causalLMFromConfig, inConfigFile, parseConfigJson } from '../index.js';
import corpus from './fixtures/models/config_fuzz.json' with { type: 'json' };

beforeAll(async () => {
  await initBackends();
});

/** Cases transformers accepts and we reject, with the reason. */
const STRICTER: Record<string, string> = {
  'llama/hidden_size zero': 'a zero-width model computes nothing (transformers builds it)',
  'llama/intermediate_size zero': 'a zero-width MLP is not a model anyone trained',
  'llama/rms_norm_eps negative': 'transformers gives all-NaN logits',
  'llama/rope_theta zero': 'transformers gives all-NaN logits',
  'llama/rope_theta negative': 'transformers gives all-NaN logits',
  'llama/top-level rope_theta zero (transformers 4 layout)': 'transformers gives all-NaN logits',
  'llama/max_position_embeddings zero': 'no position would be valid: every input fails the position check',
  'llama/NaN literal for rms_norm_eps': 'NaN is not JSON (Python writes it, JSON.parse rejects it); transformers then gives NaN logits',
  'qwen2/rms_norm_eps negative': 'a negative epsilon takes the root of a negative number on small rows (NaN)',
};

const cases = corpus.cases as FuzzCase[];
const bases = corpus.bases as Record<string, string>;
const FILE = 'memory/config.json';

/** Our verdict: parse as `fromPretrained` does, build on cpu, run the corpus ids. */
async function ourVerdict(c: FuzzCase): Promise<{ verdict: 'accepted'; finite: boolean } | { verdict: 'rejected'; error: unknown }> {
  let model;
  try {
    const raw = parseConfigJson(mutatedText(bases[c.base], c), FILE);
    model = inConfigFile(FILE, () => causalLMFromConfig(raw, { backend: 'cpu' }));
  } catch (error) {
    return { verdict: 'rejected', error };
  }
  try {
    model.eval();
    const ids = tensor(new Int32Array(corpus.ids.flat()), [corpus.ids.length, corpus.ids[0].length], { dtype: 'i32', backend: 'cpu' });
    const { logits } = model.forward({ inputIds: ids });
    const values = await logits.data();
    ids.dispose();
    logits.dispose();
    return { verdict: 'accepted', finite: values.every((v) => Number.isFinite(v)) };
  } finally {
    model.dispose();
  }
}

describe('config.json fuzz corpus: verdicts against transformers', () => {
  it(`covers ${cases.length} mutations of transformers-written GPT-2, LLaMA, Qwen2 and Mistral configs`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(55);
    expect(corpus.versions.transformers).toBe('5.18.0');
    for (const key of Object.keys(STRICTER)) expect(cases.some((c) => `${c.base}/${c.label}` === key), key).toBe(true);
  });

  for (const c of cases) {
    const key = `${c.base}/${c.label}`;
    it(key, async () => {
      const ours = await ourVerdict(c);
      if (ours.verdict === 'rejected') expect(unclearError(ours.error, [ConfigError], [FILE], c.field), key).toBeNull();
      else expect(ours.finite, `${key}: accepted configs give finite logits`).toBe(true);
      const reason = STRICTER[key];
      if (reason) {
        expect(c.verdict, `${key} is listed as stricter than transformers, so transformers accepts it`).toBe('accepted');
        expect(ours.verdict, `${key}: ${reason}`).toBe('rejected');
      } else {
        expect(ours.verdict, `${key}: transformers ${c.verdict}${c.error ? ` (${c.error})` : ''}`).toBe(c.verdict);
      }
    });
  }
});
