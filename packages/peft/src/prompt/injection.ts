import type { LayerKeyValues } from '@webpeft/nn';
import { type Tensor, concat, expand, full, narrow, ones, permute, reshape, tidy, unsqueeze } from '@webpeft/tensor';
import type { PromptInjection } from './encoder.js';
import { asDtype } from '../tuners/autocast.js';

/**
 * Prompt tuning's injection: the virtual tokens `[P, dim]` go before the input
 * embeddings of every sequence (`inputsEmbeds [B, P + T, dim]`); labels get `-100` and
 * the attention mask gets ones in front, as PEFT does. Needs `inputIds`.
 */
export const prependVirtualTokens: PromptInjection = (model, input, tokens) => {
  const ids = input.inputIds;
  if (!ids) throw new Error('prompt learning: forward needs inputIds to prepend virtual tokens');
  const [B] = ids.shape;
  const [P, dim] = tokens.shape;
  const backend = ids.backend.name;
  const made = tidy(() => {
    const embeds = model.getInputEmbeddings().forward(ids);
    // An f16 model gets its virtual tokens rounded to f16 (PEFT's `prompts.to(inputs_embeds.dtype)`).
    const inputsEmbeds = concat([expand(unsqueeze(asDtype(tokens, embeds.dtype), 0), [B, P, dim]), embeds], 1);
    const labels = input.labels ? concat([full([B, P], -100, { dtype: 'i32', backend }), input.labels], 1) : undefined;
    const mask = input.attentionMask;
    const attentionMask = mask ? concat([ones([B, P], { dtype: mask.dtype, backend }), mask], 1) : undefined;
    return { inputsEmbeds, labels, attentionMask };
  });
  try {
    return model.forward({ ...input, inputIds: undefined, ...made });
  } finally {
    for (const t of Object.values(made)) t?.dispose();
  }
};

/**
 * Prefix tuning's injection: the virtual tokens `[P, layers * 2 * H_kv * Dh]` become
 * per-layer keys and values `[B, H_kv, P, Dh]` (PEFT's layout), passed as
 * `prefixKeyValues`; the model attends to them before the input.
 */
export const injectPrefixKeyValues: PromptInjection = (model, input, tokens, config) => {
  const B = (input.inputIds ?? input.inputsEmbeds)?.shape[0];
  if (B === undefined) throw new Error('prefix tuning: forward needs inputIds or inputsEmbeds');
  const L = config.numLayers as number;
  const kvHeads = config.numAttentionHeads as number;
  const headDim = (config.tokenDim as number) / kvHeads;
  const P = tokens.shape[0];
  const kv: LayerKeyValues[] = tidy(() => {
    // An f16 model attends to f16 keys/values (PEFT casts past_key_values to the base's dtype).
    const modelTokens = asDtype(tokens, model.getInputEmbeddings().weight.dtype);
    const perm = permute(reshape(modelTokens, [P, L * 2, kvHeads, headDim]), [1, 2, 0, 3]); // [L*2, H_kv, P, Dh]
    const part = (i: number): Tensor => expand(narrow(perm, 0, i, 1), [B, kvHeads, P, headDim]);
    return Array.from({ length: L }, (_, l) => ({ key: part(2 * l), value: part(2 * l + 1) }));
  });
  try {
    return model.forward({ ...input, prefixKeyValues: kv });
  } finally {
    for (const { key, value } of kv) {
      key.dispose();
      value.dispose();
    }
  }
};
