import { type BackendName, type Tensor, assign, cast, noGrad } from '@webpeft/tensor';
import { type RawTensor, rawToTensor } from '../io/index.js';
import { type ExpectedTensor, WeightsMismatchError, dtypeKind, weightProblems } from '../io/weights-mismatch.js';
import { checkpointLayout } from './auto.js';
import type { CausalLM } from './causal-lm.js';

/** What {@link loadCausalLMWeights} did besides loading every parameter. */
export interface LoadWeightsReport {
  /** Checkpoint keys skipped on purpose (old causal-mask / RoPE buffers, a tied `lm_head.weight`). */
  ignoredKeys: string[];
}

/** Which checkpoint tensor goes into which parameter: what {@link planCausalLMWeights} returns. */
export interface CausalLMWeightsPlan extends LoadWeightsReport {
  /** Parameter key -> the checkpoint tensor to copy into it. */
  plan: Map<string, RawTensor>;
}

/**
 * Matches a Hugging Face checkpoint's tensors to `model`'s parameters without touching
 * either (so it works on a `meta` model, to check a checkpoint before allocating the
 * real one). Keys of the bare decoder stack (`h.0...`, `layers.0...`) gain the model's
 * prefix; GPT-2's `attn.bias` / `attn.masked_bias` and LLaMA's `rotary_emb.inv_freq`
 * buffers are ignored; a tied `lm_head.weight` may be absent. Any other missing,
 * unexpected, mis-shaped or wrongly typed key (an integer tensor for a float weight)
 * throws one {@link WeightsMismatchError} listing them all.
 * @param file the checkpoint's name for the error (default `checkpoint`).
 */
export function planCausalLMWeights(model: CausalLM, tensors: Map<string, RawTensor>, file = 'checkpoint'): CausalLMWeightsPlan {
  const layout = checkpointLayout(model);
  const own = model.stateDict();
  const ignoredKeys: string[] = [];
  const plan = new Map<string, RawTensor>();
  const renamed = new Map<string, RawTensor>();
  const duplicates: string[] = [];
  for (const [fileKey, raw] of tensors) {
    if (layout.ignore.test(fileKey)) {
      ignoredKeys.push(fileKey);
      continue;
    }
    const key = own.has(fileKey) || fileKey.startsWith('lm_head.') ? fileKey : `${layout.basePrefix}.${fileKey}`;
    // Unknown keys are reported under their name in the file.
    const target = own.has(key) ? key : fileKey;
    if (renamed.has(target)) duplicates.push(`duplicate: ${fileKey} and another key both load into ${target}`);
    renamed.set(target, raw);
    if (own.has(key)) plan.set(key, raw);
  }
  const expected = new Map<string, ExpectedTensor>([...own].map(([k, t]) => [k, { shape: t.shape, kind: dtypeKind(t.dtype) }]));
  const optional = new Set(layout.tied ? ['lm_head.weight'] : []);
  const problems = [...duplicates, ...weightProblems(expected, renamed, optional)];
  if (problems.length > 0) throw new WeightsMismatchError('loadCausalLMWeights', file, problems);
  if (layout.tied && plan.has('lm_head.weight')) {
    // The same tensor as the input embedding, which is loaded under its own key.
    plan.delete('lm_head.weight');
    ignoredKeys.push('lm_head.weight');
  }
  return { plan, ignoredKeys };
}

/**
 * Copies a Hugging Face checkpoint's tensors into `model`'s parameters, one at a time
 * (decoded to the parameter's dtype: f16/bf16 become f32 for an f32 model; every float
 * dtype becomes f16 for an f16 model, a value beyond f16's range an error naming the
 * key), after checking all of them
 * with {@link planCausalLMWeights}: on a mismatch nothing is copied.
 */
export function loadCausalLMWeights(model: CausalLM, tensors: Map<string, RawTensor>, options: { backend?: BackendName; file?: string } = {}): LoadWeightsReport {
  const { plan, ignoredKeys } = planCausalLMWeights(model, tensors, options.file);
  const own = model.stateDict();
  noGrad(() => {
    for (const [key, raw] of plan) {
      const param = own.get(key)!;
      // f16 parameters decode straight to f16 (range-checked on the host, naming the key).
      const floatDtype = param.dtype === 'f16' ? 'f16' : 'f32';
      const decoded: Tensor = rawToTensor(raw, { key, backend: options.backend ?? param.backend.name, floatDtype });
      let value = decoded;
      try {
        if (decoded.dtype !== param.dtype) value = cast(decoded, param.dtype);
        assign(param, value);
      } finally {
        if (value !== decoded) value.dispose();
        decoded.dispose();
      }
    }
  });
  return { ignoredKeys };
}
