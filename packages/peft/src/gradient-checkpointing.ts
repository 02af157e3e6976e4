import type { CausalLM, Module } from '@webpeft/nn';

/** What a model with gradient checkpointing offers (the causal LMs of `@webpeft/nn`). */
export type Checkpointable = Pick<CausalLM, 'gradientCheckpointingEnable' | 'gradientCheckpointingDisable' | 'isGradientCheckpointing'>;

function isCheckpointable(model: Module): model is Module & Checkpointable {
  return 'gradientCheckpointingEnable' in model && typeof model.gradientCheckpointingEnable === 'function' && 'gradientCheckpointingDisable' in model;
}

/**
 * `model` as a model with gradient checkpointing, for the wrappers that forward it (as
 * transformers' PEFT models forward `gradient_checkpointing_enable`); throws, naming
 * `owner` and the model's class, when it has none.
 */
export function checkpointable(owner: string, model: Module): Checkpointable {
  if (!isCheckpointable(model)) {
    throw new Error(`${owner}: the wrapped ${model.constructor.name} has no gradientCheckpointingEnable(); gradient checkpointing needs a causal LM of @webpeft/nn (GPT-2, LLaMA family)`);
  }
  return model;
}

/** Whether `model` checkpoints its decoder layers (false for a model without checkpointing). */
export function isGradientCheckpointing(model: Module): boolean {
  return isCheckpointable(model) && model.isGradientCheckpointing;
}
