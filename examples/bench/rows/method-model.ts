/**
 * The model a training-step row runs for full fine-tuning, LoRA or QLoRA: a seeded
 * GPT-2 (or, with `model_type: 'llama'`, a LLaMA) from `config`, NF4 double-quantized
 * for QLoRA, with LoRA r=8 on `c_attn` (LLaMA: `q_proj` and `v_proj`) for both adapter
 * methods, in train mode; in f32, or in f16 (weights, activations and the 4-bit layers'
 * compute; adapters stay f32). Shared so the rows compare the same setups.
 */
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@webpeft/nn';
import { type LoraConfig, getPeftModel } from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { type Tensor, manualSeed } from '@webpeft/tensor';

/** Training method of a step row. */
export type Method = 'full' | 'lora' | 'qlora';

/** The row's model: `model` owns every tensor (dispose it), `net` is what runs, `params` what trains. */
export interface MethodModel {
  model: GPT2LMHeadModel | LlamaForCausalLM;
  net: CausalLM;
  params: Tensor[];
}

/** Builds `method`'s model from a GPT-2 or LLaMA `config` (seed 0) in `dtype` (default f32). */
export async function methodModel(method: Method, config: Record<string, unknown>, dtype: 'f32' | 'f16' = 'f32'): Promise<MethodModel> {
  manualSeed(0);
  const llama = config.model_type === 'llama';
  const model = llama ? new LlamaForCausalLM(config, { dtype }) : new GPT2LMHeadModel(config, { dtype });
  if (method === 'qlora') await quantizeModel(model, { quantType: 'nf4', doubleQuant: true, computeDtype: dtype });
  if (method === 'full') {
    model.train();
    return { model, net: model, params: model.parameters() };
  }
  const lora: LoraConfig = { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: llama ? ['q_proj', 'v_proj'] : ['c_attn'] };
  const peft = getPeftModel(model, lora);
  const net = peft.model as CausalLM;
  net.train();
  return { model, net, params: peft.trainableParameters() };
}
