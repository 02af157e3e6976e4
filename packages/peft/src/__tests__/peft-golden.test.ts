import { type CausalLM, fromPretrained, openSource, parseSafetensors } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, crossEntropy, noGrad, reshape, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type IA3Linear, type LoraEmbedding, type LoraLinear, type PromptableModel, getPeftModel, loadPeftModel, loadPromptLearningModel, memoryFiles } from '../index.js';
import lora from './fixtures/lora_golden.json' with { type: 'json' };
import golden from './fixtures/peft_golden.json' with { type: 'json' };
import { ToyGPT } from './toy-models.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// Reference values: tools/golden/peft_golden.py, which runs Hugging Face PEFT itself
// (get_peft_model, forward/backward, merge_adapter, save_pretrained); versions in the fixture.
const TOL = { rtol: 2e-4, atol: 2e-5 };

beforeAll(async () => {
  await initBackends();
});

function adapterFiles(f: { 'adapter_config.json': string; 'adapter_model.safetensors': string }): Record<string, Uint8Array | string> {
  return { 'adapter_config.json': f['adapter_config.json'], 'adapter_model.safetensors': base64Bytes(f['adapter_model.safetensors']) };
}

/**
 * Fields of our saved adapter_config.json whose value differs from PEFT's (module lists
 * compared as sets: PEFT keeps them in a Python set), and the fields only PEFT wrote.
 */
async function configDiff(dir: { files: Map<string, Uint8Array> }, peftText: string): Promise<{ differ: string[]; peftOnly: string[] }> {
  const ours = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
  const theirs = JSON.parse(peftText) as Record<string, unknown>;
  const norm = (k: string, v: unknown) => JSON.stringify(Array.isArray(v) && k.endsWith('_modules') ? [...(v as unknown[])].sort() : v);
  return {
    differ: Object.keys(ours).filter((k) => norm(k, ours[k]) !== norm(k, theirs[k])).map((k) => `${k}: ours ${JSON.stringify(ours[k])}, peft ${JSON.stringify(theirs[k])}`),
    peftOnly: Object.keys(theirs).filter((k) => !(k in ours)),
  };
}

function setValues(t: Tensor, values: number[]): void {
  const src = tensor(new Float32Array(values), t.shape, { backend: t.backend.name });
  noGrad(() => assign(t, src));
  src.dispose();
}

function toy(backend: BackendName): { model: ToyGPT; ids: Tensor; labels: Tensor } {
  const model = own(new ToyGPT(lora.sizes, backend));
  model.loadBase(lora.base);
  const ids = tensor(new Int32Array(lora.ids), [lora.sizes.batch, lora.sizes.seq], { backend });
  const labels = tensor(new Int32Array(lora.labels), [lora.ids.length], { backend });
  return { model, ids, labels };
}

function toyLoss(logits: Tensor, labels: Tensor): Tensor {
  const flat = reshape(logits, [labels.size, lora.sizes.vocab]);
  const loss = crossEntropy(flat, labels);
  flat.dispose();
  return loss;
}

describe('LoRA rank and alpha patterns match PEFT', () => {
  it('per-layer rank and scaling, logits, loss and gradients', async () => {
    const v = lora.variants.patterns;
    for (const backend of backendsUnderTest()) {
      const { model, ids, labels } = toy(backend);
      const peft = getPeftModel(model, { peftType: 'LORA', r: lora.sizes.r, loraAlpha: lora.sizes.alpha, targetModules: v.targets, rankPattern: { c_proj: 2, wte: 3 }, alphaPattern: { c_attn: 2, wte: 12 } });
      for (const [path, w] of Object.entries(v.lora)) {
        const layer = model.getSubmodule(path) as LoraLinear | LoraEmbedding;
        const { A, B, scaling } = layer.weights('default');
        expect(scaling, `${path} scaling`).toBeCloseTo(v.scalings[path as keyof typeof v.scalings], 12);
        expect(A.shape[0], `${path} rank`).toBe(v.ranks[path as keyof typeof v.ranks]);
        setValues(A, w.A);
        setValues(B, w.B);
      }
      const logits = peft.forward(ids) as Tensor;
      expectClose(await logits.data(), v.logits, { ...TOL, label: `${backend} logits` });
      const loss = toyLoss(logits, labels);
      expectClose([await loss.item()], [v.loss], { ...TOL, label: `${backend} loss` });
      loss.backward();
      for (const [path, w] of Object.entries(v.lora)) {
        const { A, B } = (model.getSubmodule(path) as LoraLinear | LoraEmbedding).weights('default');
        expectClose(await A.grad!.data(), w.gradA, { ...TOL, label: `${backend} ${path} grad A` });
        expectClose(await B.grad!.data(), w.gradB, { ...TOL, label: `${backend} ${path} grad B` });
      }
      await peft.merge();
      const sd = model.stateDict();
      for (const [key, want] of Object.entries(v.merged)) {
        expectClose(await sd.get(key.replace(/\.weight$/, '.base_layer.weight'))!.data(), want, { ...TOL, label: `${backend} merged ${key}` });
      }
      for (const t of [logits, loss, ids, labels]) t.dispose();
      model.dispose();
    }
  });
});

describe('IA3 matches PEFT', () => {
  const fx = golden.ia3;
  it('logits, loss, gradients of the scaling vectors, merged weights', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids, labels } = toy(backend);
      const peft = getPeftModel(model, { peftType: 'IA3', targetModules: ['c_attn', 'mlp.c_proj'], feedforwardModules: ['mlp.c_proj'] });
      for (const [path, l] of Object.entries(fx.ia3)) {
        const layer = model.getSubmodule(path) as IA3Linear;
        expect(layer.isFeedforward, path).toBe(l.isFeedforward);
        const [t] = layer.adapterParameters('default');
        expect(t.shape, path).toEqual(l.shape);
        setValues(t, l.value);
      }
      const logits = peft.forward(ids) as Tensor;
      expectClose(await logits.data(), fx.logits, { ...TOL, label: `${backend} logits` });
      const loss = toyLoss(logits, labels);
      expectClose([await loss.item()], [fx.loss], { ...TOL, label: `${backend} loss` });
      loss.backward();
      for (const [path, l] of Object.entries(fx.ia3)) {
        const [t] = (model.getSubmodule(path) as IA3Linear).adapterParameters('default');
        expectClose(await t.grad!.data(), l.grad, { ...TOL, label: `${backend} ${path} grad` });
      }
      await peft.merge();
      const sd = model.stateDict();
      for (const [key, want] of Object.entries(fx.merged)) {
        expectClose(await sd.get(key.replace(/\.weight$/, '.base_layer.weight'))!.data(), want, { ...TOL, label: `${backend} merged ${key}` });
      }
      for (const t of [logits, loss, ids, labels]) t.dispose();
      model.dispose();
    }
  });

  it("PEFT's saved IA3 adapter loads and reproduces its logits; ours has the same keys and shapes", async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids, labels } = toy(backend);
      const peft = await loadPeftModel(model, memoryFiles(adapterFiles(fx.files)));
      const logits = peft.forward(ids) as Tensor;
      expectClose(await logits.data(), fx.logits, { ...TOL, label: `${backend} loaded logits` });
      const out = memoryFiles();
      await peft.saveAdapter(out);
      const shapes = (b: Uint8Array) => Object.fromEntries([...parseSafetensors(b).tensors].map(([k, r]) => [k, r.shape]));
      expect(shapes(out.files.get('adapter_model.safetensors')!)).toEqual(shapes(base64Bytes(fx.files['adapter_model.safetensors'])));
      // As for LoRA (adapter-files.test.ts): PEFT names the toy's class in auto_mapping and
      // saves fan_in_fan_out as set by the last layer it wrapped (a Linear).
      const { differ, peftOnly } = await configDiff(out, fx.files['adapter_config.json']);
      expect(differ).toEqual([`auto_mapping: ours null, peft ${JSON.stringify((JSON.parse(fx.files['adapter_config.json']) as Record<string, unknown>).auto_mapping)}`, 'fan_in_fan_out: ours true, peft false']);
      expect(peftOnly).toEqual(['peft_version']);
      for (const t of [logits, ids, labels]) t.dispose();
      model.dispose();
    }
  });
});

describe('prompt learning on a transformers LLaMA matches PEFT', () => {
  const pl = golden.promptLearning;
  const checkpoint = () => openSource({ 'config.json': pl.checkpoint['config.json'], 'model.safetensors': base64Bytes(pl.checkpoint['model.safetensors']) });
  const load = async (backend: BackendName) => own((await fromPretrained(checkpoint(), { backend })).model as CausalLM & PromptableModel);
  const idsOf = (backend: BackendName) => tensor(Int32Array.from(pl.inputIds.flat()), [pl.inputIds.length, pl.inputIds[0].length], { dtype: 'i32', backend });
  const cases = [
    ['prompt tuning', pl.promptTuning, { peftType: 'PROMPT_TUNING', numVirtualTokens: 3, promptTuningInit: 'RANDOM' }],
    ['prefix tuning', pl.prefixTuning, { peftType: 'PREFIX_TUNING', numVirtualTokens: 4 }],
  ] as const;

  for (const [name, fx, config] of cases) {
    it(`${name}: logits, loss and the gradient of the prompt table`, async () => {
      for (const backend of backendsUnderTest()) {
        const model = await load(backend);
        const peft = own(getPeftModel(model, config));
        const table = peft.encoder().embedding.weight;
        expect(table.shape).toEqual(fx.table.shape);
        setValues(table, fx.table.value);
        const ids = idsOf(backend);
        const out = peft.forward({ inputIds: ids, labels: ids });
        own(out.logits);
        own(out.loss!);
        expect(out.logits.shape).toEqual(fx.logitsShape);
        expectClose(await out.logits.data(), fx.logits, { ...TOL, label: `${name} ${backend} logits` });
        expectClose([await out.loss!.item()], [fx.loss], { ...TOL, label: `${name} ${backend} loss` });
        out.loss!.backward();
        expectClose(await table.grad!.data(), fx.table.grad, { rtol: 1e-3, atol: 1e-5, label: `${name} ${backend} table grad` });
        // The saved config: every field we write has PEFT's value.
        const dir = memoryFiles();
        await peft.saveAdapter(dir);
        const { differ, peftOnly } = await configDiff(dir, fx.files['adapter_config.json']);
        expect(differ).toEqual([]);
        expect(peftOnly).toEqual(config.peftType === 'PREFIX_TUNING' ? ['init_weights', 'modules_to_save', 'peft_version'] : ['modules_to_save', 'peft_version']);
        ids.dispose();
        model.dispose();
      }
    });
  }

  for (const [name, fx] of [...cases.map(([n, f]) => [n, f] as const), ['prefix tuning with projection', pl.prefixProjection] as const]) {
    it(`${name}: PEFT's saved adapter loads and reproduces its inference logits`, async () => {
      for (const backend of backendsUnderTest()) {
        const model = await load(backend);
        const peft = own(await loadPromptLearningModel(model, memoryFiles(adapterFiles(fx.files))));
        const ids = idsOf(backend);
        const out = peft.forward({ inputIds: ids });
        own(out.logits);
        expectClose(await out.logits.data(), fx.inferenceLogits, { ...TOL, label: `${name} ${backend} loaded logits` });
        ids.dispose();
        model.dispose();
      }
    });
  }
});
