import { type CausalLM, KVCache, fromPretrained, generate, openSource, samplingProbabilities } from '@webpeft/nn';
import { expectClose, expectNoLeak, initBackends } from '@webpeft/test-utils';
import { type BackendName, narrow, setBackend, tensor } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { type ModelFixture, fixtureFiles } from './fixtures/models/fixture.js';

let backends: BackendName[] = [];
beforeAll(async () => {
  backends = await initBackends();
});

async function load(fx: unknown): Promise<CausalLM> {
  return (await fromPretrained(openSource(fixtureFiles(fx as ModelFixture)))).model;
}

const PROMPT = [
  [5, 17, 9, 23, 4],
  [0, 0, 12, 30, 7],
];
const MASK = [
  [1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1],
];

describe('generation with a KV cache equals generation without one', () => {
  for (const [name, fx] of [
    ['gpt2', gpt2],
    ['llama', llama],
  ] as const) {
    it(`${name}: greedy and seeded sampling, left-padded batch`, async () => {
      for (const backend of backends) {
        setBackend(backend);
        const model = await load(fx);
        const greedy = { maxNewTokens: 6, attentionMask: MASK, outputLogits: true, eosTokenId: [] };
        const a = await generate(model, PROMPT, { ...greedy, useCache: true });
        const b = await generate(model, PROMPT, { ...greedy, useCache: false });
        expect(a.sequences, `${name} ${backend} greedy`).toEqual(b.sequences);
        expect(a.sequences[0].slice(0, 5)).toEqual(PROMPT[0]);
        expect(a.sequences[0]).toHaveLength(11);
        for (let s = 0; s < a.logits!.length; s++) expectClose(a.logits![s], b.logits![s], { rtol: 1e-4, atol: 2e-5, label: `${name} ${backend} step ${s}` });
        const sampling = { maxNewTokens: 6, attentionMask: MASK, doSample: true, temperature: 0.9, topK: 20, topP: 0.95, seed: 7, eosTokenId: [] };
        const c = await generate(model, PROMPT, { ...sampling, useCache: true });
        const d = await generate(model, PROMPT, { ...sampling, useCache: false });
        expect(c.sequences, `${name} ${backend} sampling`).toEqual(d.sequences);
        const e = await generate(model, PROMPT, { ...sampling, useCache: true });
        expect(e.sequences).toEqual(c.sequences);
        await expectNoLeak(() => generate(model, PROMPT, { ...greedy, maxNewTokens: 2 }), backend);
        model.dispose();
      }
    });
  }

  it('llama: cached incremental logits equal full-sequence logits', async () => {
    setBackend(backends[backends.length - 1]);
    const model = await load(llama);
    const ids = [3, 9, 27, 41, 8, 15, 60];
    const [allIds, firstIds, restIds] = [ids, ids.slice(0, 4), ids.slice(4)].map((xs) => tensor(Int32Array.from(xs), [1, xs.length], { dtype: 'i32' }));
    const full = model.forward({ inputIds: allIds });
    const cache = new KVCache();
    const first = model.forward({ inputIds: firstIds, pastKeyValues: cache });
    expect(cache.length).toBe(4);
    expect(cache.get(0)!.key.shape).toEqual([1, 2, 4, 8]);
    const rest = model.forward({ inputIds: restIds, pastKeyValues: cache });
    expect(cache.length).toBe(7);
    expect(rest.pastKeyValues).toBe(cache);
    const tail = narrow(full.logits, 1, 4, 3);
    expectClose(await rest.logits.data(), await tail.data(), { rtol: 1e-4, atol: 2e-5, label: 'incremental' });
    const head = narrow(full.logits, 1, 0, 4);
    expectClose(await first.logits.data(), await head.data(), { rtol: 1e-4, atol: 2e-5, label: 'first chunk' });
    for (const t of [full.logits, first.logits, rest.logits, tail, head, allIds, firstIds, restIds]) t.dispose();
    cache.dispose();
    model.dispose();
  });
});

describe('generate() and the model mode', () => {
  it('keeps overlapping calls in eval mode and restores the first mode after the last', async () => {
    setBackend('cpu');
    const model = await load(llama);
    const seen: boolean[] = [];
    const forward = model.forward.bind(model);
    model.forward = (input) => {
      seen.push(model.modules().some((m) => m.training));
      return forward(input);
    };
    model.train();
    // Three calls in flight at once, interleaving at their readbacks; the first to start
    // ends first, which used to put the model back in training mode under the others.
    const outs = await Promise.all([2, 4, 3].map((n) => generate(model, PROMPT, { maxNewTokens: n, eosTokenId: [], attentionMask: MASK })));
    expect(outs.map((o) => o.sequences[0].length)).toEqual([7, 9, 8]);
    expect(seen).toHaveLength(9);
    expect(seen.every((t) => !t)).toBe(true);
    expect(model.modules().every((m) => m.training)).toBe(true);
    model.eval();
    await Promise.all([generate(model, PROMPT, { maxNewTokens: 2, attentionMask: MASK }), generate(model, PROMPT, { maxNewTokens: 1, attentionMask: MASK })]);
    expect(model.modules().some((m) => m.training)).toBe(false);
    model.dispose();
  });
});

describe('sampling warpers (HF order: temperature, top-k, top-p)', () => {
  /** float64 softmax reference. */
  const softmax = (xs: number[]) => {
    const m = Math.max(...xs);
    const e = xs.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };

  it('temperature rescales, top-k keeps k, top-p keeps the smallest set reaching p', () => {
    const logits = [1.0, 3.0, 2.0, 0.5, 2.5];
    expectClose(samplingProbabilities(logits, { temperature: 0.5 }), softmax(logits.map((x) => x / 0.5)), { rtol: 1e-12, atol: 1e-15 });
    const k2 = softmax([3.0, 2.5]);
    expectClose(samplingProbabilities(logits, { topK: 2 }), [0, k2[0], 0, 0, k2[1]], { rtol: 1e-12, atol: 1e-15 });
    // Full softmax, sorted: 3.0 -> 0.3907, 2.5 -> 0.2370, 2.0 -> 0.1437 ...; p = 0.6 needs the top two only
    // (0.3907 < 0.6, then 0.6277 >= 0.6).
    const p = softmax(logits);
    expect(p[1]).toBeLessThan(0.6);
    expect(p[1] + p[4]).toBeGreaterThanOrEqual(0.6);
    expectClose(samplingProbabilities(logits, { topP: 0.6 }), [0, k2[0], 0, 0, k2[1]], { rtol: 1e-12, atol: 1e-15 });
    // top-p always keeps at least the most likely token.
    expectClose(samplingProbabilities(logits, { topP: 0.01 }), [0, 1, 0, 0, 0], { rtol: 0, atol: 0 });
  });
});
