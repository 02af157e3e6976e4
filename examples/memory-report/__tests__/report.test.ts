import { init } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { GPT2_SMALL, LLAMA_7B, fourBitBreakdown, memoryReport } from '../src/report.js';

beforeAll(async () => {
  await init({ backend: 'cpu' });
});

// Expected figures are REFERENCE.md's (read from PEFT/bitsandbytes and recomputed there).
describe('memory report on meta models', () => {
  it('reproduces the QLoRA weight memory of LLaMA-7B', () => {
    const b = fourBitBreakdown(LLAMA_7B);
    expect((b.packed / 1e9).toFixed(3)).toBe('3.238');
    expect((b.constantsDq / 1e9).toFixed(3)).toBe('0.103');
    expect((b.constantsNoDq / 1e9).toFixed(3)).toBe('0.405');
    expect((b.embeddings16bit / 1e9).toFixed(3)).toBe('0.524');
    // RMSNorm weights: 65 vectors of 4096 in 16 bits.
    expect(b.other16bit).toBe(65 * 4096 * 2);
    // About 3.87 GB in all.
    expect(((b.packed + b.constantsDq + b.embeddings16bit + b.other16bit) / 1e9).toFixed(2)).toBe('3.87');
  });

  it('counts LLaMA-7B r=8 q,v LoRA parameters and the 16-bit full fine-tuning total', () => {
    const [full, lora, qlora] = memoryReport(LLAMA_7B, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] }, { weightBytes: 2, gradBytes: 2, optimizerStateBytes: 2 });
    expect(lora.trainableParams).toBe(4_194_304);
    expect(lora.allParams).toBe(6_742_609_920);
    expect(full.trainableParams).toBe(6_738_415_616);
    // ~56 GB for full fine-tuning in 16 bits (14 weights + 14 grads + 28 Adam), ~14.5 GB LoRA, ~4 GB QLoRA.
    expect(Math.round(full.total / 1e9)).toBe(54);
    expect(lora.total / 1e9).toBeGreaterThan(13.4);
    expect(lora.total / 1e9).toBeLessThan(14.5);
    expect(qlora.total / 1e9).toBeGreaterThan(3.8);
    expect(qlora.total / 1e9).toBeLessThan(4.0);
  });

  it('counts GPT-2 small r=8 c_attn LoRA parameters', () => {
    const [, lora] = memoryReport(GPT2_SMALL, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: ['c_attn'] }, { weightBytes: 4, gradBytes: 4, optimizerStateBytes: 4 });
    expect(lora.trainableParams).toBe(294_912);
    expect(lora.allParams).toBe(124_439_808 + 294_912);
  });
});
