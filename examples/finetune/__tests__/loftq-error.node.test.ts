/**
 * LoftQ's purpose, measured: a 4-bit (NF4) base starts closer to the full-precision model when
 * its LoRA is LoftQ-initialised. A tiny seeded LLaMA; the logits error of `quantizeModel`'s NF4
 * base alone vs the same base quantized after `initLoraWeights: 'loftq'` (base + B A).
 */
import { type CausalLM, LlamaForCausalLM } from '@webpeft/nn';
import { getPeftModel } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, Linear4bit, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { type BackendName, type Tensor, manualSeed, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, initBackends, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

const CONFIG = { model_type: 'llama', vocab_size: 64, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, tie_word_embeddings: false };
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function seededModel(backend: BackendName): CausalLM {
  manualSeed(2024);
  return disposeAfterTest(new LlamaForCausalLM(CONFIG, { backend }) as CausalLM);
}

async function logits(model: CausalLM, ids: Tensor): Promise<Float64Array> {
  const out = noGrad(() => model.forward({ inputIds: ids }));
  try {
    return Float64Array.from(await out.logits.data());
  } finally {
    out.logits.dispose();
  }
}

/** ||a - b|| / ||b|| (Frobenius over all logits). */
function relError(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

describe('LoftQ initialisation over a quantizeModel NF4 base', () => {
  it('lowers the logits error of the 4-bit model vs full precision (1 and 5 steps), and the LoftQ base re-quantizes losslessly', async () => {
    for (const backend of backendsUnderTest()) {
      const ids = disposeAfterTest(tensor(randomInts(2 * 12, CONFIG.vocab_size, 91), [2, 12], { dtype: 'i32', backend }));
      const full = await logits(seededModel(backend), ids);
      const plain = seededModel(backend);
      await quantizeModel(plain, { quantType: 'nf4', doubleQuant: false });
      const plainError = relError(await logits(plain, ids), full);
      const errors: number[] = [];
      for (const loftqIter of [1, 5]) {
        const model = seededModel(backend);
        const peft = getPeftModel(model, { peftType: 'LORA', r: 8, loraAlpha: 8, targetModules: TARGETS, initLoraWeights: 'loftq', loftqConfig: { loftqBits: 4, loftqIter } });
        await peft.initLoraFromBase();
        const path = 'model.layers.0.self_attn.q_proj.base_layer';
        const before = Float32Array.from(await disposeAfterTest(noGrad(() => (model.getSubmodule(path) as unknown as { dequantizedWeight(): Tensor }).dequantizedWeight())).data());
        const { report } = await quantizeModel(model, { quantType: 'nf4', doubleQuant: false });
        expect(report.layers).toContain(path);
        const q = model.getSubmodule(path);
        expect(q).toBeInstanceOf(Linear4bit);
        // The LoftQ base already sits on NF4's grid with its own absmax: quantizing it again changes nothing.
        expect(Array.from(await disposeAfterTest(noGrad(() => (q as Linear4bit).dequantizedWeight())).data())).toEqual(Array.from(before));
        errors.push(relError(await logits(model, ids), full));
      }
      expect(errors[0], `${backend}: LoftQ(1) ${errors[0]} vs NF4 alone ${plainError}`).toBeLessThan(plainError);
      expect(errors[1], `${backend}: LoftQ(5) ${errors[1]} vs LoftQ(1) ${errors[0]}`).toBeLessThan(errors[0]);
    }
  });
});
