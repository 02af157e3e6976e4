/**
 * LoRA trains a model with SmolLM2-135M's exact shapes on webgpu: the f32 checkpoint of
 * the real-shape cache (`tools/golden/real_shapes.py`; a missing cache fails in CI and
 * skips, with the command, elsewhere), LoRA r=8 on `q_proj`/`v_proj`, three plain SGD
 * steps on one batch of 1 x 32 tokens: every loss finite, each below the one before.
 */
import { fromPretrained } from '@webpeft/nn';
import { tensor, tidy } from '@webpeft/tensor';
import { initBackends, sgdStep } from '@webpeft/test-utils';
import { realShapeCheckpoint } from '@webpeft/test-utils/real-shapes';
import { beforeAll, expect, it } from 'vitest';
import { getPeftModel } from '../index.js';

let backend: 'webgpu' | 'cpu' = 'cpu';
beforeAll(async () => {
  // In CI initBackends throws without an adapter; elsewhere the cpu reference stands in.
  backend = (await initBackends()).includes('webgpu') ? 'webgpu' : 'cpu';
});

it('SmolLM2-135M-shape LoRA: three SGD steps on 1 x 32 tokens lower a finite loss', async (ctx) => {
  const dir = realShapeCheckpoint('smollm2-135m', 'f32-sharded', ctx);
  const { model } = await fromPretrained(dir, { backend, tokenizer: false });
  const peft = getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] });
  try {
    peft.train();
    const params = peft.trainableParameters();
    expect(params.length, 'lora_A and lora_B of q_proj and v_proj in 30 layers').toBe(30 * 2 * 2);
    const v = model.config.vocab_size;
    // Fresh ids across the whole vocabulary (the last id included), labels the ids themselves.
    const ids = Int32Array.from({ length: 32 }, (_, i) => (i === 31 ? v - 1 : (i * 7919 + 13) % v));
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      const loss = tidy(() => {
        const x = tensor(ids, [1, 32], { dtype: 'i32', backend });
        const l = peft.forward({ inputIds: x, labels: x }).loss!;
        l.backward();
        return l;
      });
      losses.push(await loss.item());
      loss.dispose();
      sgdStep(params, 0.1);
    }
    for (const l of losses) expect(Number.isFinite(l), `losses ${losses.join(', ')}`).toBe(true);
    expect(losses[1], `losses ${losses.join(', ')}`).toBeLessThan(losses[0]);
    expect(losses[2], `losses ${losses.join(', ')}`).toBeLessThan(losses[1]);
  } finally {
    peft.dispose();
  }
}, 600_000);
