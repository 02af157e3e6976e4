/**
 * GPT-2 small at its real size (vocabulary 50257 x 768, 12 layers, 12 heads, 1024
 * positions) on the webgpu backend. Its tied embedding is 154 MB of f32, more than one
 * storage binding of a 128 MiB adapter (lavapipe, SwiftShader), so it lives in row
 * chunks: the lookup, the tied head's logits and its input gradient run across them.
 * The model builds from random init, its logits equal the cpu reference model's (the
 * same Philox init), it generates the cpu model's greedy tokens, and a LoRA step (r=8
 * on c_attn, AdamW) on 1x16 tokens lowers the loss. Node only, and slow: a 124M-parameter
 * model is drawn twice on the host (Philox init) and run once on the cpu reference, about
 * 2 minutes of CPU time in all; the timeout leaves room for a machine shared with other jobs.
 */
import { GPT2LMHeadModel, Linear, generate } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { getPeftModel } from '@webpeft/peft';
import { type Tensor, getBackend, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { disposeAfterTest, expectClose, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';

/** GPT-2 small's config (transformers' `GPT2Config()` defaults), dropout off for a deterministic check. */
const GPT2_SMALL = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };

beforeAll(async () => {
  await initBackends();
});

describe('GPT-2 small with its real vocabulary on webgpu', () => {
  it('builds with a split embedding, matches the cpu model, generates and takes a LoRA step', { timeout: 900_000 }, async () => {
    const gpu = getBackend('webgpu');
    manualSeed(2024);
    const model = disposeAfterTest(new GPT2LMHeadModel(GPT2_SMALL, { backend: 'webgpu' }));
    const wte = model.transformer.wte.weight;
    expect(wte.shape).toEqual([50257, 768]);
    const wteBytes = 50257 * 768 * 4;
    // Split only where the adapter's binding is smaller than the table (128 MiB on lavapipe).
    const bindings = wte.storage!.bindings ?? 1;
    if (wteBytes > gpu.maxBindingBytes) expect(bindings).toBeGreaterThan(1);
    expect(bindings).toBe(gpu.bindingsFor(wteBytes, { rowElements: 768, elementBytes: 4 }));
    // The head is tied: a Linear over the same (split) table.
    const head = model.lm_head;
    if (!(head instanceof Linear)) throw new Error('GPT-2 lm_head should be a Linear');
    expect(head.weight).toBe(wte);

    const ids = randomInts(16, 50257, 9);
    const prompt = [Array.from(ids.slice(0, 8))];

    // The cpu reference model from the same seed: its logits and greedy tokens.
    const ref = await (async () => {
      manualSeed(2024);
      const cpu = new GPT2LMHeadModel(GPT2_SMALL, { backend: 'cpu' });
      try {
        cpu.eval();
        const logits = tidy(() => {
          const x = tensor(ids, [1, 16], { dtype: 'i32', backend: 'cpu' });
          return cpu.forward({ inputIds: x }).logits;
        });
        const data = await logits.data();
        logits.dispose();
        const { sequences } = await generate(cpu, prompt, { maxNewTokens: 3 });
        return { logits: data, sequences };
      } finally {
        cpu.dispose();
      }
    })();

    model.eval();
    const logits = tidy(() => model.forward({ inputIds: tensor(ids, [1, 16], { dtype: 'i32' }) }).logits);
    expect(logits.shape).toEqual([1, 16, 50257]);
    expectClose(await logits.data(), ref.logits, { rtol: 1e-4, atol: 1e-4, label: 'GPT-2 small logits, split webgpu vs cpu' });
    logits.dispose();
    const { sequences } = await generate(model, prompt, { maxNewTokens: 3 });
    expect(sequences).toEqual(ref.sequences);

    model.train();
    const peft = disposeAfterTest(getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['c_attn'] }));
    const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-2, weightDecay: 0 });
    onTestFinished(() => optimizer.disposeState());
    const losses: number[] = [];
    for (let step = 0; step < 2; step++) {
      const loss: Tensor = tidy(() => {
        const x = tensor(ids, [1, 16], { dtype: 'i32' });
        const l = peft.forward({ inputIds: x, labels: x }).loss!;
        l.backward();
        return l;
      });
      losses.push(await loss.item());
      loss.dispose();
      await optimizer.step();
      optimizer.zeroGrad();
    }
    // Random init with std 0.02 gives near-uniform logits: the loss starts near ln(50257) = 10.825.
    expect(Math.abs(losses[0] - Math.log(50257))).toBeLessThan(0.5);
    expect(losses[1]).toBeLessThan(losses[0]);
    // LoRA layers sit inside `model`, so the model itself generates with the adapter.
    const tuned = await generate(model, prompt, { maxNewTokens: 3 });
    expect(tuned.sequences[0].length).toBe(11);
    expect(tuned.sequences[0].every((t) => Number.isInteger(t) && t >= 0 && t < 50257)).toBe(true);
  });
});
