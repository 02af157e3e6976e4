import { memoryTarget, openSource, parseSafetensors } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, noGrad, randn, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { getPeftModel, loadPeftModel, memoryFiles } from '../index.js';
import golden from './fixtures/lora_golden.json' with { type: 'json' };
import { ToyGPT } from './toy-models.js';
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

/** adapter_config.json fields PEFT (the version in the fixture) writes for LoRA and this package does not. */
const PEFT_ONLY_LORA_FIELDS = [
  'alora_invocation_tokens', 'arrow_config', 'corda_config', 'ensure_weight_tying', 'kasa_config', 'lora_ga_config', 'monteclora_config',
  'peft_version', 'qalora_group_size', 'target_parameters', 'trainable_token_indices', 'use_bdlora', 'use_qalora', 'velora_config',
];

function peftFiles(): Record<string, Uint8Array | string> {
  const bin = atob(golden.peftAdapter['adapter_model.safetensors']);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return { 'adapter_config.json': golden.peftAdapter['adapter_config.json'], 'adapter_model.safetensors': bytes };
}

function toy(backend: BackendName): { model: ToyGPT; ids: Tensor } {
  const model = new ToyGPT(golden.sizes, backend);
  model.loadBase(golden.base);
  return { model: own(model), ids: own(tensor(new Int32Array(golden.ids), [golden.sizes.batch, golden.sizes.seq], { backend })) };
}

describe('adapter files in PEFT format', () => {
  it('an adapter written in PEFT layout loads and reproduces its logits; saving it again gives the same files', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = toy(backend);
      const peft = await loadPeftModel(model, openSource(peftFiles()));
      peft.eval();
      expect(peft.getNbTrainableParameters().trainable).toBe(0); // inference mode, as PEFT's from_pretrained
      const logits = peft.forward(ids) as Tensor;
      expectClose(await logits.data(), golden.peftAdapter.logits, { rtol: 2e-4, atol: 2e-5, label: `${backend} logits` });

      const out = memoryTarget();
      await peft.saveAdapter(out);
      const oursCfg = JSON.parse(new TextDecoder().decode(out.files.get('adapter_config.json'))) as Record<string, unknown>;
      const theirsCfg = JSON.parse(golden.peftAdapter['adapter_config.json']) as Record<string, unknown>;
      // Every field we write is one PEFT wrote, with PEFT's value, except two: PEFT names the
      // class of a base model that is not a transformers model in auto_mapping (the toy here),
      // and saves fan_in_fan_out as set by the last layer it wrapped (c_proj, a Linear),
      // while we save true when any target is a Conv1D; loading re-decides it per layer.
      const differ = Object.keys(oursCfg).filter((k) => JSON.stringify(oursCfg[k]) !== JSON.stringify(theirsCfg[k]));
      expect(differ.map((k) => `${k}: ours ${JSON.stringify(oursCfg[k])}, peft ${JSON.stringify(theirsCfg[k])}`)).toEqual([
        `auto_mapping: ours null, peft ${JSON.stringify(theirsCfg.auto_mapping)}`,
        'fan_in_fan_out: ours true, peft false',
      ]);
      // What PEFT writes beyond that: its version and the fields of features this package does not implement.
      expect(Object.keys(theirsCfg).filter((k) => !(k in oursCfg))).toEqual(PEFT_ONLY_LORA_FIELDS);
      expect(theirsCfg.peft_version).toBe(golden.versions.peft);
      const ours = parseSafetensors(out.files.get('adapter_model.safetensors')!);
      const theirs = parseSafetensors(peftFiles()['adapter_model.safetensors'] as Uint8Array);
      expect(ours.metadata).toEqual({ format: 'pt' });
      expect([...ours.tensors.keys()].sort()).toEqual([...theirs.tensors.keys()].sort());
      for (const [k, raw] of theirs.tensors) {
        expect(ours.tensors.get(k)!.shape, k).toEqual(raw.shape);
        expect(Array.from(ours.tensors.get(k)!.data), k).toEqual(Array.from(raw.data));
      }
      logits.dispose();
      ids.dispose();
      model.dispose();
    }
  });

  it('key names and shapes: Linear, Conv1D, Embedding and DoRA', async () => {
    const { model } = toy('cpu');
    const peft = getPeftModel(model, { peftType: 'LORA', r: 2, targetModules: ['c_attn', 'c_proj', 'wte'] });
    peft.addAdapter('dora', { peftType: 'LORA', r: 3, targetModules: ['c_proj'], useDora: true });
    const dir = memoryFiles();
    await peft.saveAdapter(dir);
    const { V, D, H } = { V: golden.sizes.vocab, D: golden.sizes.hidden, H: golden.sizes.attnOut };
    const shapes = (file: string) => Object.fromEntries([...parseSafetensors(dir.files.get(file)!).tensors].map(([k, r]) => [k, r.shape]));
    expect(shapes('adapter_model.safetensors')).toEqual({
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': [2, D],
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': [H, 2],
      'base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight': [2, H],
      'base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight': [D, 2],
      'base_model.model.transformer.wte.lora_embedding_A': [2, V],
      'base_model.model.transformer.wte.lora_embedding_B': [D, 2],
    });
    // Non-default adapters go to a subfolder named after them.
    expect(shapes('dora/adapter_model.safetensors')).toEqual({
      'base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight': [3, H],
      'base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight': [D, 3],
      'base_model.model.transformer.h.0.mlp.c_proj.lora_magnitude_vector': [D],
    });
    const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('dora/adapter_config.json'))) as Record<string, unknown>;
    expect(Object.keys(cfg)).toEqual([...Object.keys(cfg)].sort());
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 3, lora_alpha: 8, use_dora: true, fan_in_fan_out: false, bias: 'none', target_modules: ['c_proj'], init_lora_weights: true });
    model.dispose();
  });

  it('a trained adapter (and a non-default one) round-trips through save and load', async () => {
    for (const backend of backendsUnderTest()) {
      const { model, ids } = toy(backend);
      const peft = getPeftModel(model, { peftType: 'LORA', r: 2, loraAlpha: 4, targetModules: ['c_attn', 'wte'], bias: 'lora_only' });
      peft.addAdapter('second', { peftType: 'LORA', r: 3, targetModules: ['c_proj'], useDora: true, useRslora: true });
      // "Train": give every adapter tensor and the trained bias fresh random values.
      for (const name of ['default', 'second']) {
        for (const t of peft.adapterStateDict(name).values()) {
          const r = randn(t.shape, { backend });
          noGrad(() => assign(t, r));
          r.dispose();
        }
      }
      expect([...peft.adapterStateDict('default').keys()]).toContain('base_model.model.transformer.h.0.attn.c_attn.base_layer.bias');
      peft.setAdapter('second');
      const want2 = await own(peft.forward(ids) as Tensor).data();
      peft.setAdapter('default');
      const want = await own(peft.forward(ids) as Tensor).data();
      const dir = memoryFiles();
      await peft.saveAdapter(dir);

      const fresh = toy(backend);
      const loaded = await loadPeftModel(fresh.model, dir, { isTrainable: true });
      await loaded.loadAdapter(dir, 'second', { subfolder: 'second' });
      expect(loaded.getNbTrainableParameters().trainable).toBe(peft.getNbTrainableParameters().trainable);
      expectClose(await own(loaded.forward(fresh.ids) as Tensor).data(), want, { rtol: 1e-5, atol: 1e-6, label: `${backend} default` });
      loaded.setAdapter('second');
      expectClose(await own(loaded.forward(fresh.ids) as Tensor).data(), want2, { rtol: 1e-5, atol: 1e-6, label: `${backend} second` });
      model.dispose();
      fresh.model.dispose();
    }
  });

  it('reports every missing, unexpected and mis-shaped key at once', async () => {
    const files = peftFiles();
    const config = JSON.parse(files['adapter_config.json'] as string) as Record<string, unknown>;
    config.r = 3; // the file's tensors have rank 4
    const { model } = toy('cpu');
    await expect(loadPeftModel(model, memoryFiles({ ...files, 'adapter_config.json': JSON.stringify(config) }))).rejects.toThrow(
      /shape mismatch: base_model\.model\.transformer\.wte\.lora_embedding_A: model \[3, 11\], file \[4, 11\]/,
    );
    config.r = 4;
    config.target_modules = ['c_attn'];
    const { model: m2 } = toy('cpu');
    await expect(loadPeftModel(m2, memoryFiles({ ...files, 'adapter_config.json': JSON.stringify(config) }))).rejects.toThrow(/unexpected: base_model\.model\.transformer\.wte\.lora_embedding_A/);
  });
});

