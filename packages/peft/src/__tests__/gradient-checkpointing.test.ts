/**
 * `PeftModel.gradientCheckpointingEnable()` (and the prompt-learning wrapper's) forwards
 * to the wrapped causal LM (as transformers' PEFT models do) and refuses a model that
 * has no decoder layers to checkpoint. The gradients themselves are checked in examples/finetune's
 * gradient-checkpointing-adapters test (every adapter family, QLoRA and f16).
 */
import { GPT2LMHeadModel } from '@webpeft/nn';
import { getPeftModel } from '@webpeft/peft';
import { disposeAfterTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { ToyGPT } from './toy-models.js';

beforeAll(async () => {
  await initBackends();
});

describe('PeftModel gradient checkpointing', () => {
  it('turns the wrapped causal LM on and off', () => {
    const model = disposeAfterTest(new GPT2LMHeadModel({ vocab_size: 16, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 }, { backend: 'cpu' }));
    const peft = disposeAfterTest(getPeftModel(model, { peftType: 'LORA', r: 2, targetModules: ['c_attn'] }));
    expect(peft.isGradientCheckpointing).toBe(false);
    expect(peft.gradientCheckpointingEnable()).toBe(peft);
    expect(model.isGradientCheckpointing).toBe(true);
    expect(peft.isGradientCheckpointing).toBe(true);
    peft.gradientCheckpointingDisable();
    expect(model.isGradientCheckpointing).toBe(false);
  });

  it('turns the base model of a prompt-learning wrapper on and off', () => {
    const model = disposeAfterTest(new GPT2LMHeadModel({ vocab_size: 16, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 }, { backend: 'cpu' }));
    const peft = disposeAfterTest(getPeftModel(model, { peftType: 'PREFIX_TUNING', numVirtualTokens: 2 }));
    expect(peft.gradientCheckpointingEnable()).toBe(peft);
    expect(model.isGradientCheckpointing).toBe(true);
    expect(peft.isGradientCheckpointing).toBe(true);
    peft.gradientCheckpointingDisable();
    expect(peft.isGradientCheckpointing).toBe(false);
  });

  it('refuses a model without decoder layers to checkpoint, naming it', () => {
    const toy = disposeAfterTest(new ToyGPT({ vocab: 8, hidden: 4, attnOut: 4 }, 'cpu'));
    const peft = disposeAfterTest(getPeftModel(toy, { peftType: 'LORA', r: 2, targetModules: ['c_attn'] }));
    expect(() => peft.gradientCheckpointingEnable()).toThrow(/PeftModel: the wrapped ToyGPT has no gradientCheckpointingEnable\(\)/);
    expect(peft.isGradientCheckpointing).toBe(false);
  });
});
