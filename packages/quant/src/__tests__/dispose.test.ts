/**
 * `Module.dispose()` of a quantized model frees every `Linear4bit`'s packed weight and
 * quantization state (absmax, nested constants), not only registered parameters: live
 * tensors and buffers go back to where they were before the model was built.
 */
import { LlamaForCausalLM } from '@webpeft/nn';
import { Linear4bit, quantizeModel } from '@webpeft/quant';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

const SMALL = { model_type: 'llama', vocab_size: 32, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 };

describe('disposing a quantized model', () => {
  it('frees the quantization state of every Linear4bit (with and without double quantization)', async () => {
    for (const backend of backendsUnderTest()) {
      for (const doubleQuant of [true, false]) {
        const before = liveCounts(backend);
        const { model } = await quantizeModel(new LlamaForCausalLM(SMALL, { backend }), { doubleQuant });
        const layers = model.namedModules().filter(([, m]) => m instanceof Linear4bit);
        expect(layers.length, 'q/k/v/o and the MLP of both layers').toBe(14);
        const owned = (layers[0][1] as Linear4bit).quantState.ownedTensors().length;
        // absmax alone, or the nested state's qabsmax, absmax2 and offset.
        expect(owned).toBe(doubleQuant ? 3 : 1);
        model.dispose();
        expect(liveCounts(backend), `${backend}, doubleQuant ${doubleQuant}`).toEqual(before);
      }
    }
  });
});
