/**
 * The adapter_config.json fuzz corpus (`fixtures/adapter_config_fuzz.json`, written by
 * `tools/golden/config_fuzz.py` from adapters PEFT itself saved): every mutated config,
 * loaded with the adapter's real weight file onto a fresh tiny LLaMA, must reach the
 * same verdict as PEFT 0.21's `PeftModel.from_pretrained` (plus a forward pass), except
 * the documented stricter cases below; every rejection is a typed error naming the file
 * (and the field), and a rejected load leaves the model exactly as it was.
 */
import { type Module, ConfigError, LlamaForCausalLM, SafetensorsError, WeightsMismatchError } from '@webpeft/nn';
import { type Tensor, memory, tensor } from '@webpeft/tensor';
import { type FuzzCase, initBackends, mutatedText, unclearError } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { isPromptLearningType, loadPeftModel, loadPromptLearningModel, memoryFiles } from '../index.js';
import corpus from './fixtures/adapter_config_fuzz.json' with { type: 'json' };
import { checkLeaksPerTest } from './leak-check.js';

checkLeaksPerTest();

beforeAll(async () => {
  await initBackends();
});

/**
 * Cases PEFT accepts and we reject, each with the reason. PEFT's configs are dataclasses
 * that check few types, and its loader only warns about missing or unexpected adapter
 * keys; we refuse both, since the adapter would then run with weights other than the
 * file's (a truthy string turning a feature on, or adapter weights silently left at
 * their init or dropped).
 */
const STRICTER: Record<string, string> = {
  'lora/NaN literal for lora_alpha': 'NaN is not JSON (Python writes it, JSON.parse rejects it); PEFT then gives all-NaN logits',
  'lora/lora_dropout negative': 'a dropout probability below 0 is meaningless; PEFT takes it as no dropout',
  'lora/target_modules fewer than the file': "the file's v_proj weights would be dropped (PEFT warns and drops them)",
  'lora/target_modules more than the file': 'k_proj adapters would keep their init (PEFT warns about the missing keys)',
  'lora/use_rslora string "false"': 'a string is not a boolean; PEFT reads "false" as true',
  'lora/use_rslora number 1': 'a number is not a boolean',
  'lora/use_dora string': 'a string is not a boolean; PEFT reads "yes" as true',
  'lora/use_dora true without magnitudes in the file': 'the DoRA magnitudes would keep their init (PEFT warns about the missing keys)',
  'lora/fan_in_fan_out string': 'a string is not a boolean',
  'lora/layers_to_transform one of two layers': "the file's layer-1 weights would be dropped",
  'lora/inference_mode string': 'a string is not a boolean',
  'lora/revision number': 'revision names a git revision: a string or null',
  'lora/base_model_name_or_path number': 'a path or repo id is a string or null',
  'lora/lora_bias true': 'LoRA biases (lora_bias) are not implemented: a clear error instead of missing keys',
  'ia3/init_ia3_weights string': 'a string is not a boolean',
  'ia3/target_modules fewer than the file': "the file's v_proj vectors would be dropped",
  'prompt/prompt_tuning_init unknown': "PEFT only reads it at init, which the file's weights replace; an unknown value is still an error",
  'prefix/prefix_projection string': 'a string is not a boolean; PEFT reads "false" as true',
};

const cases = corpus.cases as FuzzCase[];
const bases = corpus.bases as Record<string, { 'adapter_config.json': string; 'adapter_model.safetensors': string }>;

function weightsBytes(base: string): Uint8Array {
  const bin = atob(bases[base]['adapter_model.safetensors']);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The model's structure, parameters and trainability, to compare before and after a failed load. */
function shapeOf(model: Module): string[] {
  return [
    ...model.namedModules().map(([p, m]) => `${p}:${m.constructor.name}`),
    ...model.namedParameters().map(([n, t]) => `${n}:[${t.shape.join(',')}]:${t.requiresGrad}`),
  ];
}

function liveTensors(): number {
  return memory('cpu').liveTensors + memory('meta').liveTensors;
}

/** Our verdict on one case (cpu): accepted with finite logits or not, or the rejection's error. */
async function ourVerdict(c: FuzzCase): Promise<{ verdict: 'accepted'; finite: boolean } | { verdict: 'rejected'; error: unknown }> {
  const model = new LlamaForCausalLM({ model_type: 'llama', ...corpus.llama }, { backend: 'cpu' });
  const files = memoryFiles({ 'adapter_config.json': mutatedText(bases[c.base]['adapter_config.json'], c), 'adapter_model.safetensors': weightsBytes(c.base) });
  const before = shapeOf(model);
  const live = liveTensors();
  let peft: Module & { forward(input: { inputIds: Tensor }): { logits: Tensor } };
  try {
    const prompt = isPromptLearningType(c.base === 'prompt' ? 'PROMPT_TUNING' : c.base === 'prefix' ? 'PREFIX_TUNING' : 'LORA');
    peft = prompt ? await loadPromptLearningModel(model, files) : await loadPeftModel(model, files);
  } catch (error) {
    // A rejected load leaves the model as it was and allocates nothing.
    expect(shapeOf(model), `${c.base}/${c.label}: model after the failed load`).toEqual(before);
    expect(liveTensors(), `${c.base}/${c.label}: live tensors after the failed load`).toBe(live);
    model.dispose();
    return { verdict: 'rejected', error };
  }
  try {
    const ids = tensor(new Int32Array(corpus.ids.flat()), [corpus.ids.length, corpus.ids[0].length], { dtype: 'i32', backend: 'cpu' });
    const { logits } = peft.forward({ inputIds: ids });
    const values = await logits.data();
    ids.dispose();
    logits.dispose();
    return { verdict: 'accepted', finite: values.every((v) => Number.isFinite(v)) };
  } finally {
    peft.dispose();
  }
}

describe('adapter_config.json fuzz corpus: verdicts against PEFT', () => {
  it(`covers ${cases.length} mutations of PEFT-written LoRA, IA3, prompt- and prefix-tuning configs`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    expect(corpus.versions.peft).toBe('0.21.0');
    for (const key of Object.keys(STRICTER)) expect(cases.some((c) => `${c.base}/${c.label}` === key), key).toBe(true);
  });

  for (const c of cases) {
    const key = `${c.base}/${c.label}`;
    it(key, async () => {
      const ours = await ourVerdict(c);
      if (ours.verdict === 'rejected') {
        expect(unclearError(ours.error, [ConfigError, WeightsMismatchError, SafetensorsError], ['memory/adapter_config.json', 'memory/adapter_model.safetensors'], c.field), key).toBeNull();
      } else {
        expect(ours.finite, `${key}: accepted adapters give finite logits`).toBe(true);
      }
      const reason = STRICTER[key];
      if (reason) {
        expect(c.verdict, `${key} is listed as stricter than PEFT, so PEFT accepts it`).toBe('accepted');
        expect(ours.verdict, `${key}: ${reason}`).toBe('rejected');
      } else {
        expect(ours.verdict, `${key}: PEFT ${c.verdict}${c.error ? ` (${c.error})` : ''}`).toBe(c.verdict);
      }
    });
  }
});
