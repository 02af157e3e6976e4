/**
 * `modules_to_save` as PEFT 0.21 does it (ModulesToSaveWrapper): each adapter trains its own
 * copy of the named module and the original is kept, so disabling or switching adapters
 * restores the base exactly. PEFT's saved adapter (`fixtures/modules_to_save_golden.json`,
 * LoRA r=2 on q_proj/v_proj with modules_to_save=["lm_head"] on the untied tiny LLaMA of the
 * nn fixtures, every trainable tensor moved off its init) loads here with PEFT's logits; our
 * save has PEFT's keys and config and loads back to the same logits.
 */
import { type CausalLM, ConfigError, Linear, fromPretrained, openSource, parseSafetensors } from '@webpeft/nn';
import { type BackendName, type Tensor, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModulesToSaveWrapper, getPeftModel, loadPeftModel, memoryFiles } from '../index.js';
import golden from './fixtures/modules_to_save_golden.json' with { type: 'json' };
import llama from '../../../nn/src/__tests__/fixtures/models/llama.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

const TOL = { atol: 1e-4, rtol: 0 };

function f32(b64: string): Float32Array {
  const b = base64Bytes(b64);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

async function base(backend: BackendName): Promise<CausalLM> {
  return own((await fromPretrained(openSource({ 'config.json': llama.files['config.json'], 'model.safetensors': base64Bytes(llama.files['model.safetensors']) }), { backend })).model);
}

const peftFiles = () => memoryFiles({ 'adapter_config.json': golden.files['adapter_config.json'], 'adapter_model.safetensors': base64Bytes(golden.files['adapter_model.safetensors']) });

async function logitsOf(m: { forward(input: { inputIds: Tensor }): unknown }, backend: BackendName): Promise<Float32Array> {
  const ids = tensor(Int32Array.from(golden.inputIds.flat()), [golden.inputIds.length, golden.inputIds[0].length], { dtype: 'i32', backend });
  const { logits } = noGrad(() => m.forward({ inputIds: ids })) as { logits: Tensor };
  const values = Float32Array.from(await logits.data());
  ids.dispose();
  logits.dispose();
  return values;
}

describe('modules_to_save: PEFT 0.21 files', () => {
  it("PEFT's adapter loads with PEFT's logits; disabled gives the base logits exactly; the original is untouched", async () => {
    for (const backend of backendsUnderTest()) {
      const model = await base(backend);
      const baseLogits = await logitsOf(model, backend);
      expectClose(baseLogits, f32(golden.baseLogits), { ...TOL, label: `${backend} base` });
      const originalWeight = Array.from(await (model.getSubmodule('lm_head') as Linear).weight.data());
      const peft = await loadPeftModel(model, peftFiles(), { isTrainable: true });
      const wrapper = peft.model.getSubmodule('lm_head');
      expect(wrapper).toBeInstanceOf(ModulesToSaveWrapper);
      expectClose(await logitsOf(peft, backend), f32(golden.logits), { ...TOL, label: `${backend} adapter` });
      expect(await peft.disableAdapter(() => logitsOf(peft, backend))).toEqual(baseLogits);
      expectClose(await logitsOf(peft, backend), f32(golden.logits), { ...TOL, label: `${backend} after disable` });
      // PEFT's trainable parameter names, exactly (the copy, not the original).
      expect(peft.namedParameters().filter(([, t]) => t.requiresGrad).map(([n]) => n).sort()).toEqual(golden.trainable);
      expect(Array.from(await (wrapper as ModulesToSaveWrapper).original_module.weight.data())).toEqual(originalWeight);
    }
  });

  it("our save holds PEFT's keys and modules_to_save, and loads back to the same logits", async () => {
    for (const backend of backendsUnderTest()) {
      const peft = await loadPeftModel(await base(backend), peftFiles());
      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      const saved = await dir.readBytes('adapter_model.safetensors');
      expect([...parseSafetensors(saved, 'ours').tensors.keys()].sort()).toEqual(golden.savedKeys);
      const config = JSON.parse(await dir.readText('adapter_config.json')) as { modules_to_save: unknown };
      expect(config.modules_to_save).toEqual(['lm_head']);
      const again = await loadPeftModel(await base(backend), dir);
      expect(await logitsOf(again, backend)).toEqual(await logitsOf(peft, backend));
    }
  });
});

describe('modules_to_save: per-adapter copies', () => {
  it('switching to an adapter without a copy restores the original lm_head; switching back restores the copy', async () => {
    for (const backend of backendsUnderTest()) {
      const model = await base(backend);
      const baseLogits = await logitsOf(model, backend);
      const peft = await loadPeftModel(model, peftFiles());
      // LoRA B starts at zero: this adapter alone leaves the base logits as they are.
      peft.addAdapter('plain', { peftType: 'LORA', r: 2, targetModules: ['q_proj'] });
      peft.setAdapter('plain');
      expect(await logitsOf(peft, backend)).toEqual(baseLogits);
      peft.setAdapter('default');
      expectClose(await logitsOf(peft, backend), f32(golden.logits), { ...TOL, label: backend });
    }
  });

  it('two adapters keep separate copies; both active at once is refused and changes nothing', async () => {
    const peft = await loadPeftModel(await base('cpu'), peftFiles(), { isTrainable: true });
    peft.addAdapter('second', { peftType: 'LORA', r: 2, targetModules: ['v_proj'], modulesToSave: ['lm_head'] });
    const w = peft.model.getSubmodule('lm_head') as ModulesToSaveWrapper;
    expect(w.adapterNames()).toEqual(['default', 'second']);
    expect(w.copyOf('second')?.weight).not.toBe(w.copyOf('default')?.weight);
    // The second copy starts from the original's values, not from the first adapter's trained copy.
    expect(Array.from(await (w.copyOf('second') as Linear).weight.data())).toEqual(Array.from(await w.original_module.weight.data()));
    expect(() => peft.setAdapter(['default', 'second'])).toThrow(/setAdapter: adapters default, second each save their own copy .* only one of them can be active/);
    expect(peft.activeAdapters).toEqual(['default']);
    expect(w.activeAdapter).toBe('default');
    peft.deleteAdapter('second');
    expect(w.adapterNames()).toEqual(['default']);
    peft.deleteAdapter('default');
    expect(peft.model.getSubmodule('lm_head')).toBeInstanceOf(Linear);
  });

  it('mergeAndUnload keeps the active copy as lm_head (PEFT); unload keeps the original', async () => {
    for (const backend of backendsUnderTest()) {
      const model = await base(backend);
      const baseLogits = await logitsOf(model, backend);
      const peft = await loadPeftModel(model, peftFiles());
      const adapted = await logitsOf(peft, backend);
      const live = liveCounts(backend);
      const merged = await peft.mergeAndUnload();
      expect(merged.getSubmodule('lm_head')).toBeInstanceOf(Linear);
      expectClose(await logitsOf(merged as CausalLM, backend), adapted, { ...TOL, label: backend });
      // The original lm_head and the LoRA tensors are freed.
      expect(liveCounts(backend).tensors).toBeLessThan(live.tensors);
      const other = await loadPeftModel(await base(backend), peftFiles());
      const plain = await other.unload();
      expect(await logitsOf(plain as CausalLM, backend)).toEqual(baseLogits);
    }
  });

  it('bad modulesToSave is a typed error naming the field; the model is unchanged', async () => {
    const model = await base('cpu');
    const tree = () => model.namedModules().map(([p, m]) => `${p}:${m.constructor.name}`);
    const before = tree();
    const live = liveCounts('cpu');
    const cases: [string[], RegExp][] = [
      [['nope'], /modulesToSave \["nope"\]: no module of the base model matches/],
      [['q_proj'], /modulesToSave: 'model\.layers\.0\.self_attn\.q_proj' is also an adapter target/],
      [['norm'], /modulesToSave: 'model\.norm' is a RMSNorm; only full-precision Linear modules/],
    ];
    for (const [modulesToSave, error] of cases) {
      let caught: unknown;
      try {
        getPeftModel(model, { peftType: 'LORA', r: 2, targetModules: ['q_proj'], modulesToSave } as never);
      } catch (e) {
        caught = e;
      }
      expect((caught as Error).message, modulesToSave.join()).toMatch(error);
      if (caught instanceof ConfigError) expect(caught.field).toBe('modulesToSave');
      expect(tree()).toEqual(before);
      expect(liveCounts('cpu')).toEqual(live);
    }
  });
});

