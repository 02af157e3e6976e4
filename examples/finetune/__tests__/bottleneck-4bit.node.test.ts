/**
 * Bottleneck adapters over a 4-bit base, end to end: a tiny GPT-2 (Houlsby placement) and
 * a tiny LLaMA (Pfeiffer and parallel placements) quantized to NF4 with double
 * quantization, trained on real text. Node only: the State of the Union corpus package
 * reads its files from disk.
 */
import { type CausalLM, CharTokenizer, GPT2LMHeadModel, LlamaForCausalLM, parseSafetensors } from '@webpeft/nn';
import { AdamW } from '@webpeft/optim';
import { type BottleneckConfig, getPeftModel, loadPeftModel, memoryFiles } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, Linear4bit, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { type Tensor, manualSeed, noGrad, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, disposeAfterTest, expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { randomBatch } from '../src/batches.js';
import { stateOfTheUnion } from '../src/corpus.js';
import { SeededRandom } from '../src/seeded-random.js';

const TEXT = stateOfTheUnion(2001, 2004).text.slice(0, 60_000);
const tokenizer = CharTokenizer.fromText(TEXT);
const ids = Int32Array.from(tokenizer.encode(TEXT));

const CASES = {
  'gpt2 Houlsby': {
    config: { model_type: 'gpt2', vocab_size: tokenizer.vocabSize, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, initializer_range: 0.1 },
    build: (c: Record<string, unknown>) => new GPT2LMHeadModel(c),
    adapter: { peftType: 'BOTTLENECK', reductionFactor: 2 } as BottleneckConfig,
  },
  'llama Pfeiffer': {
    config: { model_type: 'llama', vocab_size: tokenizer.vocabSize, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: false },
    build: (c: Record<string, unknown>) => new LlamaForCausalLM(c),
    adapter: { peftType: 'BOTTLENECK', mhAdapter: false, nonLinearity: 'relu', reductionFactor: 2, lnBefore: true } as BottleneckConfig,
  },
  'llama parallel': {
    config: { model_type: 'llama', vocab_size: tokenizer.vocabSize, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: false },
    build: (c: Record<string, unknown>) => new LlamaForCausalLM(c),
    adapter: { peftType: 'BOTTLENECK', isParallel: true, mhAdapter: false, nonLinearity: 'relu' } as BottleneckConfig,
  },
} as const;

/** The same random base every time (seeded init), quantized to NF4 + double quantization. */
async function quantizedBase(name: keyof typeof CASES): Promise<CausalLM> {
  manualSeed(1234);
  const c = CASES[name];
  const model = c.build(c.config) as CausalLM;
  await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
  return disposeAfterTest(model);
}

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

describe.each(Object.keys(CASES) as (keyof typeof CASES)[])('bottleneck adapters on a 4-bit %s', (name) => {
  it('train only the adapters, lower the loss on the corpus, keep the 4-bit base, round-trip the adapter', async () => {
    expect(backendsUnderTest()).toContain('webgpu');
    const model = await quantizedBase(name);
    const quantized = model.namedModules().filter(([, m]) => m instanceof Linear4bit);
    expect(quantized.length).toBeGreaterThan(0);
    const peft = getPeftModel(model, CASES[name].adapter);
    const trainable = peft.namedParameters().filter(([, p]) => p.requiresGrad);
    for (const [n] of trainable) expect(n).toMatch(/\.adapter_(down|up|norm_before)_(weight|bias)\.default$/);
    const packedBefore = await (quantized[0][1] as Linear4bit).packedWeight.data();

    const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-2, weightDecay: 0 });
    onTestFinished(() => optimizer.disposeState());
    const rng = new SeededRandom(7);
    const evalBatch = randomBatch(ids, 8, 48, new SeededRandom(99));
    const net = peft.model as CausalLM;
    const lossOf = async (): Promise<number> => {
      const l = noGrad(() => tidy(() => {
        const x = tensor(evalBatch.inputIds, [8, 48], { dtype: 'i32' });
        return net.forward({ inputIds: x, labels: x }).loss!;
      }));
      const v = await l.item();
      l.dispose();
      return v;
    };
    const before = await lossOf();
    for (let step = 0; step < 40; step++) {
      const loss: Tensor = tidy(() => {
        const b = randomBatch(ids, 8, 48, rng);
        const x = tensor(b.inputIds, [8, 48], { dtype: 'i32' });
        const l = net.forward({ inputIds: x, labels: x }).loss!;
        l.backward();
        return l;
      });
      if (step === 0) {
        for (const [n, p] of peft.namedParameters()) {
          if (p.requiresGrad) expect(p.grad, n).not.toBeNull();
          else expect(p.grad, n).toBeNull();
        }
      }
      await optimizer.step();
      optimizer.zeroGrad();
      loss.dispose();
    }
    const after = await lossOf();
    expect(after).toBeLessThan(before - 0.3);
    const packedAfter = await (quantized[0][1] as Linear4bit).packedWeight.data();
    expect(Array.from(packedAfter)).toEqual(Array.from(packedBefore));
    await expect(peft.mergeAndUnload()).rejects.toThrow(/bottleneck adapter cannot be merged/);

    const dir = memoryFiles();
    await peft.saveAdapter(dir);
    const keys = [...parseSafetensors(dir.files.get('adapter_model.safetensors')!).tensors.keys()];
    expect(keys.every((k) => /^base_model\.model\..*\.(attn|self_attn|mlp)\.adapter_(down|up|norm_before)\.(weight|bias)$/.test(k))).toBe(true);
    const x = disposeAfterTest(tensor(evalBatch.inputIds, [8, 48], { dtype: 'i32' }));
    const expected = await takeData(noGrad(() => net.forward({ inputIds: x }).logits));
    const reloaded = await loadPeftModel(await quantizedBase(name), dir);
    const got = await takeData(noGrad(() => (reloaded.model as CausalLM).forward({ inputIds: x }).logits));
    expectClose(got, expected, { rtol: 1e-5, atol: 1e-6, label: 'reloaded adapter logits' });
  }, 300_000);
});
