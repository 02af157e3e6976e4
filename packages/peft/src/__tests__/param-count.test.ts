import { init } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ResolvedLoraConfig, getPeftModel } from '../index.js';
import { gpt2SmallMeta, llama7bMeta } from './toy-models.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// Counts from REFERENCE.md ("Counts to reproduce"), on meta-backend trees (shapes only).
beforeAll(async () => {
  await init({ backend: 'cpu' });
});

describe('trainable parameter counts (meta backend)', () => {
  it('GPT-2 small, r=8 on c_attn: 294,912', () => {
    const peft = own(getPeftModel(gpt2SmallMeta(), { peftType: 'LORA', r: 8, targetModules: ['c_attn'] }));
    expect(peft.getNbTrainableParameters().trainable).toBe(294_912);
    const cfg = peft.peftConfig.get('default') as ResolvedLoraConfig;
    expect(cfg.fanInFanOut).toBe(true); // Conv1D target, as PEFT sets it
  });

  it("LLaMA-7B, r=8 on q_proj, v_proj: PEFT's exact report line", () => {
    const peft = own(getPeftModel(llama7bMeta(), { peftType: 'LORA', r: 8, targetModules: ['q_proj', 'v_proj'] }));
    const lines: string[] = [];
    peft.printTrainableParameters((l) => lines.push(l));
    expect(lines).toEqual(['trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622']);
  });

  it('LLaMA-7B default targets come from model_type (q_proj, v_proj)', () => {
    const peft = own(getPeftModel(llama7bMeta(), { peftType: 'LORA' }));
    expect(peft.getNbTrainableParameters().trainable).toBe(4_194_304);
  });

  it('LLaMA-7B all-linear: r=16 -> 39,976,960 and r=64 -> 159,907,840 (lm_head excluded)', () => {
    const p16 = own(getPeftModel(llama7bMeta(), { peftType: 'LORA', r: 16, targetModules: 'all-linear' }));
    expect(p16.getNbTrainableParameters().trainable).toBe(39_976_960);
    const saved = p16.peftConfig.get('default') as ResolvedLoraConfig;
    expect([...saved.targetModules].sort()).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const p64 = own(getPeftModel(llama7bMeta(), { peftType: 'LORA', r: 64, targetModules: 'all-linear' }));
    expect(p64.getNbTrainableParameters().trainable).toBe(159_907_840);
  });

  it('layersToTransform and rankPattern change the count', () => {
    // Two layers of q,v at r=8: 2 * 2 * 8 * (4096 + 4096).
    const p = own(getPeftModel(llama7bMeta(), { peftType: 'LORA', r: 8, targetModules: ['q_proj', 'v_proj'], layersToTransform: [0, 31] }));
    expect(p.getNbTrainableParameters().trainable).toBe(2 * 2 * 8 * 8192);
    // v_proj at r=2: 32 * (8 + 2) * 8192.
    const q = own(getPeftModel(llama7bMeta(), { peftType: 'LORA', r: 8, targetModules: ['q_proj', 'v_proj'], rankPattern: { v_proj: 2 } }));
    expect(q.getNbTrainableParameters().trainable).toBe(32 * 10 * 8192);
  });

  it('DoRA adds one magnitude per output row', () => {
    const p = own(getPeftModel(llama7bMeta(), { peftType: 'LORA', r: 8, targetModules: ['q_proj', 'v_proj'], useDora: true }));
    expect(p.getNbTrainableParameters().trainable).toBe(4_194_304 + 64 * 4096);
  });
});
