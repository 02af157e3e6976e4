/**
 * `hotswapAdapter` replaces a loaded LoRA adapter's weights in place: the logits after the
 * swap equal a fresh load of the second adapter (a different alpha, so the scaling is taken
 * over too), no layer is re-wrapped, and every incompatible swap (PEFT's config rules,
 * other targets or ranks, a merged adapter, a broken file) is a typed error that changes
 * nothing. The first adapter is PEFT's own file (`fixtures/adapter_config_fuzz.json`, LoRA
 * r=2 on q_proj/v_proj of a tiny LLaMA); the second is that file with fresh random tensors.
 */
import { type Module, LlamaForCausalLM, WeightsMismatchError, parseSafetensors, serializeSafetensors } from '@webpeft/nn';
import { type BackendName, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { HotswapError, type PeftModel, hotswapAdapter, loadPeftModel, memoryFiles } from '../index.js';
import corpus from './fixtures/adapter_config_fuzz.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

const lora = corpus.bases.lora;
const baseConfig = JSON.parse(lora['adapter_config.json']) as Record<string, unknown>;

function bytesOf(b64: string): Uint8Array {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** PEFT's file, or (seed given) the same keys and shapes filled with fresh uniform values. */
function weightsFile(seed?: number): Uint8Array {
  const { tensors } = parseSafetensors(bytesOf(lora['adapter_model.safetensors']), 'base');
  if (seed === undefined) return serializeSafetensors(tensors, { format: 'pt' });
  let s = seed;
  const fresh = new Map([...tensors].map(([k, v]) => {
    const n = v.shape.reduce((a, b) => a * b, 1);
    return [k, { dtype: 'F32' as const, shape: v.shape, data: new Uint8Array(randomArray(n, s++, -0.5, 0.5).buffer) }];
  }));
  return serializeSafetensors(fresh, { format: 'pt' });
}

function files(config: Record<string, unknown>, seed?: number) {
  return memoryFiles({ 'adapter_config.json': JSON.stringify({ ...baseConfig, ...config }), 'adapter_model.safetensors': weightsFile(seed) });
}

/** Adapter A (PEFT's file with fresh values, alpha 4) and B (other values, alpha 8: another scaling). */
const A = () => files({}, 100);
const B = () => files({ lora_alpha: 8 }, 200);

function tinyLlama(backend: BackendName): LlamaForCausalLM {
  return new LlamaForCausalLM({ model_type: 'llama', ...corpus.llama }, { backend });
}

async function logitsOf(peft: Module, backend: BackendName): Promise<number[]> {
  const ids = tensor(new Int32Array([3, 1, 4, 1, 5, 9, 2, 6]), [2, 4], { dtype: 'i32', backend });
  const { logits } = noGrad(() => (peft as PeftModel).forward({ inputIds: ids }));
  const values = Array.from(await logits.data());
  ids.dispose();
  logits.dispose();
  return values;
}

async function weightsOf(peft: PeftModel): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of peft.adapterStateDict('default')) out[k] = Array.from(await (t).data());
  return out;
}

function treeOf(model: Module): string[] {
  return [...model.namedModules().map(([p, m]) => `${p}:${m.constructor.name}`), ...model.namedParameters().map(([n, t]) => `${n}:[${t.shape.join(',')}]:${t.requiresGrad}`)];
}

describe('hotswapAdapter', () => {
  it('the logits after swapping A for B equal a fresh load of B; the tensors are the same objects', async () => {
    for (const backend of backendsUnderTest()) {
      const model = own(tinyLlama(backend));
      const fresh = await loadPeftModel(model, B());
      const expected = await logitsOf(fresh, backend);
      await fresh.unload();
      const peft = await loadPeftModel(model, A());
      const before = await logitsOf(peft, backend);
      const tensors = [...peft.adapterStateDict('default').values()];
      const tree = treeOf(peft);
      await hotswapAdapter(peft, B(), 'default');
      const after = await logitsOf(peft, backend);
      expect(Math.max(...after.map((v, i) => Math.abs(v - before[i]))), `${backend}: the swap changes the logits`).toBeGreaterThan(1e-3);
      expect(Math.max(...after.map((v, i) => Math.abs(v - expected[i]))), backend).toBeLessThanOrEqual(1e-6);
      expect([...peft.adapterStateDict('default').values()]).toEqual(tensors);
      expect(treeOf(peft)).toEqual(tree);
      expect((peft.peftConfig.get('default') as unknown as { loraAlpha: number }).loraAlpha).toBe(8);
      // Swapping back restores A exactly.
      await hotswapAdapter(peft, A(), 'default');
      expect(await logitsOf(peft, backend)).toEqual(before);
      await peft.unload();
    }
  });

  const FAILURES: { label: string; files: () => ReturnType<typeof files>; field?: string; type: abstract new (...a: never[]) => Error; error: RegExp }[] = [
    { label: 'use_rslora differs', files: () => files({ use_rslora: true }, 200), field: 'useRslora', type: HotswapError, error: /configs are incompatible: for use_rslora, false != true/ },
    { label: 'lora_dropout differs', files: () => files({ lora_dropout: 0.1 }, 200), field: 'loraDropout', type: HotswapError, error: /for lora_dropout, 0 != 0\.1/ },
    { label: 'use_dora differs', files: () => files({ use_dora: true }, 200), field: 'useDora', type: HotswapError, error: /for use_dora, false != true/ },
    { label: 'alpha_pattern differs', files: () => files({ alpha_pattern: { q_proj: 2 } }, 200), field: 'alphaPattern', type: HotswapError, error: /for alpha_pattern, \{\} != \{"q_proj":2\}/ },
    { label: 'other targets', files: () => files({ target_modules: ['q_proj'] }, 200), type: HotswapError, error: /same modules .*v_proj\.lora_A\.weight is not in the new adapter/ },
    { label: 'another rank', files: () => files({ r: 3 }, 200), type: HotswapError, error: /q_proj\.lora_A\.weight is \[2,16\] in place but \[3,16\] in the new adapter/ },
    { label: 'not LoRA', files: () => memoryFiles({ 'adapter_config.json': corpus.bases.ia3['adapter_config.json'], 'adapter_model.safetensors': bytesOf(corpus.bases.ia3['adapter_model.safetensors']) }), field: 'peftType', type: HotswapError, error: /LORA adapters only, the new adapter is IA3/ },
    {
      label: 'a tensor missing from the file',
      files: () => {
        const { tensors } = parseSafetensors(weightsFile(200), 'b');
        tensors.delete('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight');
        return memoryFiles({ 'adapter_config.json': JSON.stringify(baseConfig), 'adapter_model.safetensors': serializeSafetensors(tensors, { format: 'pt' }) });
      },
      type: WeightsMismatchError,
      error: /missing: .*layers\.1\.self_attn\.v_proj\.lora_B\.weight/,
    },
  ];

  it('an incompatible swap is a typed error naming the field, and changes nothing', async () => {
    for (const backend of backendsUnderTest()) {
      const peft = own(await loadPeftModel(tinyLlama(backend), A(), { isTrainable: true }));
      const logits = await logitsOf(peft, backend);
      const weights = await weightsOf(peft);
      const tree = treeOf(peft);
      const config = JSON.stringify(peft.peftConfig.get('default'));
      const live = liveCounts(backend);
      for (const f of FAILURES) {
        const error = await hotswapAdapter(peft, f.files(), 'default').catch((e: unknown) => e);
        expect(error, `${f.label}: ${String(error)}`).toBeInstanceOf(f.type);
        expect((error as Error).message, f.label).toMatch(f.error);
        if (f.field) expect((error as HotswapError).field, f.label).toBe(f.field);
        expect(treeOf(peft), f.label).toEqual(tree);
        expect(await weightsOf(peft), f.label).toEqual(weights);
        expect(JSON.stringify(peft.peftConfig.get('default')), f.label).toBe(config);
        expect(await logitsOf(peft, backend), f.label).toEqual(logits);
        expect(liveCounts(backend), f.label).toEqual(live);
      }
      await expect(hotswapAdapter(peft, B(), 'other')).rejects.toThrow(/hotswapAdapter\('other'\): no adapter 'other' \(have: default\)/);
    }
  });

  it('a merged adapter is refused until unmerged', async () => {
    const peft = own(await loadPeftModel(tinyLlama('cpu'), A()));
    await peft.merge();
    await expect(hotswapAdapter(peft, B(), 'default')).rejects.toThrow(/merged into the base weights of model\.layers\.0\.self_attn\.q_proj.*unmerge it first/);
    await peft.unmerge();
    await hotswapAdapter(peft, B(), 'default');
  });
});
