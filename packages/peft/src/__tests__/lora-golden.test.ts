import { type BackendName, type Tensor, assign, crossEntropy, noGrad, reshape, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { LoraEmbedding, LoraLinear, type PeftModel, getPeftModel } from '../index.js';
import golden from './fixtures/lora_golden.json' with { type: 'json' };
import { ToyGPT } from './toy-models.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// Reference values: tools/golden/peft_golden.py (PEFT's own get_peft_model, forward/backward and merge_adapter, float64).
type Variant = (typeof golden.variants)['lora'] & { magnitude?: Record<string, { value: number[]; grad: number[] }> };
const TOL = { rtol: 2e-4, atol: 2e-5 };

beforeAll(async () => {
  await initBackends();
});

function build(backend: BackendName, v: Variant): { model: ToyGPT; peft: PeftModel; ids: Tensor; labels: Tensor } {
  const model = own(new ToyGPT(golden.sizes, backend));
  model.loadBase(golden.base);
  const targets = v.useDora ? ['c_attn', 'c_proj'] : ['wte', 'c_attn', 'c_proj'];
  const peft = getPeftModel(model, { peftType: 'LORA', r: golden.sizes.r, loraAlpha: golden.sizes.alpha, targetModules: targets, useRslora: v.useRslora, useDora: v.useDora });
  for (const [path, w] of Object.entries(v.lora)) {
    const layer = model.getSubmodule(path) as LoraLinear | LoraEmbedding;
    const { A, B } = layer.weights('default');
    setValues(A, w.A);
    setValues(B, w.B);
  }
  for (const [path, m] of Object.entries(v.magnitude ?? {})) setValues((model.getSubmodule(path) as LoraLinear).weights('default').magnitude!, m.value);
  const ids = own(tensor(new Int32Array(golden.ids), [golden.sizes.batch, golden.sizes.seq], { backend }));
  const labels = own(tensor(new Int32Array(golden.labels), [golden.ids.length], { backend }));
  return { model, peft, ids, labels };
}

function setValues(t: Tensor, values: number[]): void {
  const src = tensor(new Float32Array(values), t.shape, { backend: t.backend.name });
  noGrad(() => assign(t, src));
  src.dispose();
}

function lossOf(logits: Tensor, labels: Tensor): Tensor {
  const flat = reshape(logits, [labels.size, golden.sizes.vocab]);
  const loss = crossEntropy(flat, labels);
  flat.dispose();
  return loss;
}

describe('LoRA forward, loss and gradients match PyTorch (Linear, Conv1D, Embedding)', () => {
  for (const name of ['lora', 'rslora', 'dora'] as const) {
    it(`${name}: logits, loss, gradients, merge/unmerge`, async () => {
      const v = golden.variants[name] as Variant;
      for (const backend of backendsUnderTest()) {
        const { model, peft, ids, labels } = build(backend, v);
        const label = `${name} ${backend}`;
        expect((model.getSubmodule('transformer.h.0.attn.c_attn') as LoraLinear).scaling('default')).toBeCloseTo(v.scaling, 12);
        const logits = peft.forward(ids) as Tensor;
        expectClose(await logits.data(), v.logits, { ...TOL, label: `${label} logits` });
        const loss = lossOf(logits, labels);
        expectClose([await loss.item()], [v.loss], { ...TOL, label: `${label} loss` });
        loss.backward();
        for (const [path, w] of Object.entries(v.lora)) {
          const { A, B } = (model.getSubmodule(path) as LoraLinear | LoraEmbedding).weights('default');
          expectClose(await A.grad!.data(), w.gradA, { ...TOL, label: `${label} ${path} grad A` });
          expectClose(await B.grad!.data(), w.gradB, { ...TOL, label: `${label} ${path} grad B` });
        }
        for (const [path, m] of Object.entries(v.magnitude ?? {})) {
          const mag = (model.getSubmodule(path) as LoraLinear).weights('default').magnitude!;
          expectClose(await mag.grad!.data(), m.grad, { ...TOL, label: `${label} ${path} grad magnitude` });
        }
        // Only adapter parameters receive gradients; the base is frozen.
        const baseW = (model.getSubmodule('lm_head') as unknown as { weight: Tensor }).weight;
        expect(baseW.requiresGrad).toBe(false);
        expect(baseW.grad).toBeNull();

        await peft.merge();
        const sd = model.stateDict();
        for (const [key, want] of Object.entries(v.merged)) {
          const k = key.replace(/\.weight$/, '.base_layer.weight');
          expectClose(await sd.get(k)!.data(), want, { ...TOL, label: `${label} merged ${key}` });
        }
        const mergedLogits = peft.forward(ids) as Tensor;
        expectClose(await mergedLogits.data(), v.logits, { ...TOL, label: `${label} merged logits` });
        await peft.unmerge();
        for (const key of Object.keys(v.merged)) {
          const k = key.replace(/\.weight$/, '.base_layer.weight');
          expectClose(await sd.get(k)!.data(), golden.base[key as keyof typeof golden.base], { rtol: 1e-4, atol: 1e-5, label: `${label} unmerged ${key}` });
        }
        for (const t of [logits, loss, mergedLogits, ids, labels]) t.dispose();
        model.dispose();
      }
    });
  }

  it('DoRA magnitude starts at the row norms of W (B = 0), and the adapter starts as a no-op', async () => {
    for (const backend of backendsUnderTest()) {
      const model = own(new ToyGPT(golden.sizes, backend));
      model.loadBase(golden.base);
      const ids = own(tensor(new Int32Array(golden.ids), [golden.sizes.batch, golden.sizes.seq], { backend }));
      const before = model.forward(ids);
      const peft = getPeftModel(model, { peftType: 'LORA', r: 4, targetModules: ['c_proj'], useDora: true });
      const mag = (model.getSubmodule('transformer.h.0.mlp.c_proj') as LoraLinear).weights('default').magnitude!;
      // c_proj weight [D, H] row-major: norms of its D rows, in float64.
      const W = golden.base['transformer.h.0.mlp.c_proj.weight'];
      const H = golden.sizes.attnOut;
      const norms = Array.from({ length: golden.sizes.hidden }, (_, i) => Math.hypot(...W.slice(i * H, (i + 1) * H)));
      expectClose(await mag.data(), norms, { rtol: 1e-5, atol: 1e-6, label: `${backend} magnitude init` });
      const after = peft.forward(ids) as Tensor;
      expectClose(await after.data(), await before.data(), { rtol: 1e-5, atol: 1e-5, label: `${backend} DoRA init is identity` });
      for (const t of [before, after, ids]) t.dispose();
      model.dispose();
    }
  });
});
