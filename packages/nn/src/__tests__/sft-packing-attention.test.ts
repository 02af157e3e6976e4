import { type CausalLM, collatePacked, fromPretrained, openSource } from '@webpeft/nn';
import { expectClose, initBackends, randomInts, takeData } from '@webpeft/test-utils';
import { type BackendName, noGrad, setBackend, tensor } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { type ModelFixture, fixtureFiles } from './fixtures/models/fixture.js';

let backends: BackendName[] = [];
beforeAll(async () => {
  backends = await initBackends();
});

/**
 * Packing is exact for our models: a packed row (per-query block mask, restarting position
 * ids) gives every sample the logits and loss it gets alone, which is what TRL's
 * padding-free packing computes with FlashAttention.
 */
describe('packed rows attend only within their own sample', () => {
  for (const [name, fx] of [
    ['llama', llama],
    ['gpt2', gpt2],
  ] as const) {
    it(`${name}: logits and loss of a packed row equal each sample run alone`, async () => {
      for (const backend of backends) {
        setBackend(backend);
        const model: CausalLM = (await fromPretrained(openSource(fixtureFiles(fx)))).model;
        const vocab = (JSON.parse((fx as unknown as ModelFixture).files['config.json']) as { vocab_size: number }).vocab_size;
        const lengths = [5, 3, 4];
        const samples = lengths.map((n, i) => Array.from(randomInts(n, vocab, 40 + i)));
        const batch = collatePacked(
          [
            { inputIds: samples[0].concat(samples[1]), labels: samples[0].concat(samples[1]), seqLengths: [5, 3] },
            { inputIds: samples[2], labels: samples[2], seqLengths: [4] },
          ],
          { padTokenId: 0 },
        );
        const t = batch.seqLen;
        const packed = noGrad(() => {
          const inputIds = tensor(batch.inputIds, [2, t], { dtype: 'i32' });
          const labels = tensor(batch.labels, [2, t], { dtype: 'i32' });
          const attentionMask = tensor(batch.attentionMask, [2, t, t], { dtype: 'i32' });
          const positionIds = tensor(batch.positionIds!, [2, t], { dtype: 'i32' });
          const out = model.forward({ inputIds, labels, attentionMask, positionIds });
          for (const x of [inputIds, labels, attentionMask, positionIds]) x.dispose();
          return out;
        });
        const logits = await takeData(packed.logits);
        const loss = (await takeData(packed.loss!))[0];
        packed.logits.dispose();
        packed.loss!.dispose();
        let lossSum = 0;
        const starts = [
          [0, 0],
          [0, 5],
          [1, 0],
        ];
        for (let s = 0; s < 3; s++) {
          const n = lengths[s];
          const alone = noGrad(() => {
            const ids = tensor(Int32Array.from(samples[s]), [1, n], { dtype: 'i32' });
            const out = model.forward({ inputIds: ids, labels: ids });
            ids.dispose();
            return out;
          });
          const want = await takeData(alone.logits);
          lossSum += (await takeData(alone.loss!))[0] * (n - 1);
          alone.logits.dispose();
          alone.loss!.dispose();
          const [row, start] = starts[s];
          const got = logits.subarray((row * t + start) * vocab, (row * t + start + n) * vocab);
          expectClose(got, want, { rtol: 1e-4, atol: 1e-5, label: `${name} ${backend} sample ${s} logits` });
        }
        // The first token of every sample is not a target, so the packed mean runs over sum(n - 1) targets.
        expect(batch.targets).toBe(lengths.reduce((a, n) => a + n - 1, 0));
        expect(Math.abs(loss - lossSum / batch.targets)).toBeLessThan(1e-4);
        model.dispose();
      }
    });
  }
});
