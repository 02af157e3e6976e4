import { type BackendName, type Tensor, assign, cast, noGrad } from '@webpeft/tensor';
import { type RawTensor, rawToTensor } from '../io/index.js';
import { checkpointLayout } from './auto.js';
import type { CausalLM } from './causal-lm.js';

/** What {@link loadCausalLMWeights} did besides loading every parameter. */
export interface LoadWeightsReport {
  /** Checkpoint keys skipped on purpose (old causal-mask / RoPE buffers, a tied `lm_head.weight`). */
  ignoredKeys: string[];
}

/**
 * Copies a Hugging Face checkpoint's tensors into `model`'s parameters, one at a time
 * (decoded to the parameter's dtype: f16/bf16 become f32 for an f32 model; every float
 * dtype becomes f16 for an f16 model, a value beyond f16's range an error naming the key). Keys of the bare decoder
 * stack (`h.0...`, `layers.0...`) gain the model's prefix; GPT-2's `attn.bias` /
 * `attn.masked_bias` and LLaMA's `rotary_emb.inv_freq` buffers are ignored; a tied
 * `lm_head.weight` may be absent. Any other missing, unexpected or mis-shaped key
 * throws one error listing them all, before anything is copied.
 */
export function loadCausalLMWeights(model: CausalLM, tensors: Map<string, RawTensor>, options: { backend?: BackendName } = {}): LoadWeightsReport {
  const layout = checkpointLayout(model);
  const own = model.stateDict();
  const ignoredKeys: string[] = [];
  const plan = new Map<string, RawTensor>();
  const unexpected: string[] = [];
  for (const [fileKey, raw] of tensors) {
    if (layout.ignore.test(fileKey)) {
      ignoredKeys.push(fileKey);
      continue;
    }
    const key = own.has(fileKey) || fileKey.startsWith('lm_head.') ? fileKey : `${layout.basePrefix}.${fileKey}`;
    if (!own.has(key)) unexpected.push(fileKey);
    else plan.set(key, raw);
  }
  const problems: string[] = unexpected.map((k) => `  unexpected: ${k}`);
  for (const [key, t] of own) {
    const raw = plan.get(key);
    if (!raw) {
      if (!(layout.tied && key === 'lm_head.weight')) problems.push(`  missing: ${key}`);
      continue;
    }
    if (raw.shape.length !== t.rank || raw.shape.some((d, i) => d !== t.shape[i])) {
      problems.push(`  shape mismatch: ${key}: model [${t.shape.join(', ')}], checkpoint [${raw.shape.join(', ')}]`);
    }
  }
  if (problems.length > 0) throw new Error(`loadCausalLMWeights: ${problems.length} problem(s):\n${problems.join('\n')}`);
  if (layout.tied && plan.has('lm_head.weight')) {
    // The same tensor as the input embedding, which is loaded under its own key.
    plan.delete('lm_head.weight');
    ignoredKeys.push('lm_head.weight');
  }
  noGrad(() => {
    for (const [key, raw] of plan) {
      const param = own.get(key)!;
      // f16 parameters decode straight to f16 (range-checked on the host, naming the key).
      const floatDtype = param.dtype === 'f16' ? 'f16' : 'f32';
      const decoded: Tensor = rawToTensor(raw, { key, backend: options.backend ?? param.backend.name, floatDtype });
      const value = decoded.dtype === param.dtype ? decoded : cast(decoded, param.dtype);
      assign(param, value);
      if (value !== decoded) value.dispose();
      decoded.dispose();
    }
  });
  return { ignoredKeys };
}
