import { parseSafetensors } from '@webpeft/nn';
import { type Tensor, assign, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type IA3Linear, getPeftModel, memoryFiles } from '../index.js';
import golden from './fixtures/lora_golden.json' with { type: 'json' };
import { ToyGPT } from './toy-models.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

const { vocab: V, hidden: D, attnOut: H } = golden.sizes;
const base = golden.base;

/** float64 forward of the toy model with IA3: c_attn output scaled by l1 [H], c_proj input by l2 [H]. */
function reference(l1: ArrayLike<number>, l2: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (const id of golden.ids) {
    const e = base['transformer.wte.weight'].slice(id * D, (id + 1) * D);
    const a = Array.from({ length: H }, (_, j) => {
      let s = base['transformer.h.0.attn.c_attn.bias'][j];
      for (let i = 0; i < D; i++) s += e[i] * base['transformer.h.0.attn.c_attn.weight'][i * H + j];
      return Math.tanh(s * l1[j]);
    });
    const o = Array.from({ length: D }, (_, r) => {
      let s = base['transformer.h.0.mlp.c_proj.bias'][r];
      for (let j = 0; j < H; j++) s += a[j] * l2[j] * base['transformer.h.0.mlp.c_proj.weight'][r * H + j];
      return s;
    });
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += o[i] * base['lm_head.weight'][v * D + i];
      out.push(s);
    }
  }
  return out;
}

describe('IA3', () => {
  it('starts as the identity, scales outputs (attention) and inputs (feed-forward), merges and saves as PEFT', async () => {
    for (const backend of backendsUnderTest()) {
      const model = own(new ToyGPT(golden.sizes, backend));
      model.loadBase(golden.base);
      const ids = own(tensor(new Int32Array(golden.ids), [golden.sizes.batch, golden.sizes.seq], { backend }));
      const peft = getPeftModel(model, { peftType: 'IA3' }); // gpt2 defaults: c_attn, mlp.c_proj (feed-forward)
      expect(peft.getNbTrainableParameters().trainable).toBe(H + H);
      const ones = new Array(H).fill(1);
      expectClose(await own(peft.forward(ids) as Tensor).data(), reference(ones, ones), { rtol: 2e-4, atol: 2e-5, label: `${backend} identity` });

      const attn = model.getSubmodule('transformer.h.0.attn.c_attn') as IA3Linear;
      const mlp = model.getSubmodule('transformer.h.0.mlp.c_proj') as IA3Linear;
      expect([attn.isFeedforward, mlp.isFeedforward]).toEqual([false, true]);
      const l1 = randomArray(H, 1, 0.5, 1.5) as Float32Array;
      const l2 = randomArray(H, 2, 0.5, 1.5) as Float32Array;
      for (const [layer, l] of [[attn, l1], [mlp, l2]] as const) {
        const [t] = layer.adapterParameters('default');
        const src = tensor(l, t.shape, { backend });
        noGrad(() => assign(t, src));
        src.dispose();
      }
      const want = reference(l1, l2);
      expectClose(await own(peft.forward(ids) as Tensor).data(), want, { rtol: 2e-4, atol: 2e-5, label: `${backend} scaled` });
      await peft.merge();
      expectClose(await own(peft.forward(ids) as Tensor).data(), want, { rtol: 2e-4, atol: 2e-5, label: `${backend} merged` });
      await peft.unmerge();
      expectClose(await own(peft.forward(ids) as Tensor).data(), want, { rtol: 2e-4, atol: 2e-5, label: `${backend} unmerged` });

      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      const shapes = Object.fromEntries([...parseSafetensors(dir.files.get('adapter_model.safetensors')!).tensors].map(([k, r]) => [k, r.shape]));
      expect(shapes).toEqual({ 'base_model.model.transformer.h.0.attn.c_attn.ia3_l': [H, 1], 'base_model.model.transformer.h.0.mlp.c_proj.ia3_l': [1, H] });
      const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
      expect(cfg).toMatchObject({ peft_type: 'IA3', target_modules: ['c_attn', 'mlp.c_proj'], feedforward_modules: ['mlp.c_proj'], fan_in_fan_out: true, init_ia3_weights: true });
      ids.dispose();
      model.dispose();
    }
  });

  it('rejects feed-forward modules that are not targets', () => {
    const model = own(new ToyGPT(golden.sizes, 'cpu'));
    expect(() => getPeftModel(model, { peftType: 'IA3', targetModules: ['c_attn'], feedforwardModules: ['c_proj'] } as never)).toThrow(/subset of targetModules/);
  });
});
