import { describe, expect, it } from 'vitest';
import { llamaConfig } from '../models/llama/config.js';

const SMALL = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64 };

describe('llamaConfig: RoPE fields in both transformers layouts', () => {
  it('reads transformers 4 top-level rope_theta and rope_scaling', () => {
    const cfg = llamaConfig({ ...SMALL, rope_theta: 500000, rope_scaling: { rope_type: 'linear', factor: 2 } });
    expect(cfg.rope_theta).toBe(500000);
    expect(cfg.rope_scaling).toEqual({ rope_type: 'linear', factor: 2 });
  });

  it("reads transformers 5 rope_parameters, where rope_type 'default' means no scaling", () => {
    // The shape transformers 5.18 writes for LlamaConfig(rope_theta=10000.0).
    const plain = llamaConfig({ ...SMALL, rope_parameters: { rope_theta: 10000.0, rope_type: 'default' } });
    expect(plain.rope_theta).toBe(10000);
    expect(plain.rope_scaling).toBeNull();
    const scaled = llamaConfig({ ...SMALL, rope_parameters: { rope_theta: 500000, rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect(scaled.rope_theta).toBe(500000);
    expect(scaled.rope_scaling).toMatchObject({ rope_type: 'llama3', factor: 8, original_max_position_embeddings: 8192 });
  });

  it('rejects a rope_parameters that is not an object, naming the field', () => {
    expect(() => llamaConfig({ ...SMALL, rope_parameters: 3 })).toThrow(/llama config: 'rope_parameters' must be an object/);
  });
});
