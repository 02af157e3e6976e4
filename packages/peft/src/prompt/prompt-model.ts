import { type CausalLM, type CausalLMInput, type CausalLMOutput, type GenerationPrefix, Module } from '@webpeft/nn';
import { adapterNamesOf } from '../tuners/mixed-batch.js';
import { type Tensor, add, pad } from '@webpeft/tensor';
import { ensureBuiltinMethods } from '../builtins.js';
import { countParameters, formatTrainableParameters } from '../count.js';
import { checkpointable, isGradientCheckpointing } from '../gradient-checkpointing.js';
import { saveAdapter } from '../io/adapter-files.js';
import type { AdapterTarget } from '../io/file-access.js';
import { type PromptLearningMethod, getPromptLearningMethod } from '../registry.js';
import { ModuleDict } from '../tuners/containers.js';
import type { PeftConfig } from '../config.js';
import type { PromptLearningConfig } from './config.js';
import type { PromptEncoder, PromptableModel } from './encoder.js';

/**
 * PEFT's `PeftModelForCausalLM` for prompt learning: the frozen model as `base_model`,
 * one encoder per adapter under `prompt_encoder.<name>`. The adapter's method (from the
 * registry) makes the encoder and says how the model consumes its virtual tokens:
 * prompt tuning prepends them to the input embeddings (labels get -100, the mask gets
 * ones), prefix tuning passes per-layer keys/values as `prefixKeyValues`.
 *
 * It is a `CausalLM` (config and input embeddings are the base model's), so nn's
 * `generate` runs it: the virtual tokens or prefix keys/values are applied in the call
 * whose cache is empty, and enter the cache there; a call with a non-empty cache passes
 * the new tokens to the base model with only the attention mask widened by the virtual
 * tokens (PEFT's `prepare_inputs_for_generation`).
 */
export class PromptLearningModel extends Module implements CausalLM {
  readonly base_model: PromptableModel;
  readonly prompt_encoder: ModuleDict<PromptEncoder>;
  /** Resolved config per adapter. */
  readonly peftConfig = new Map<string, PromptLearningConfig>();
  private active = '';

  constructor(model: PromptableModel, config: PromptLearningConfig, adapterName = 'default') {
    super();
    ensureBuiltinMethods();
    this.base_model = this.registerModule('base_model', model);
    this.prompt_encoder = this.registerModule('prompt_encoder', new ModuleDict<PromptEncoder>());
    model.freeze();
    this.addAdapter(adapterName, config);
    this.setAdapter(adapterName);
  }

  /**
   * Gradient checkpointing on the frozen base model: its decoder layers keep only their
   * inputs (the prefix keys/values of prefix tuning among them, so the encoder still
   * gets its gradient) and are recomputed in backward. Returns `this`.
   */
  gradientCheckpointingEnable(): this {
    checkpointable('PromptLearningModel', this.base_model).gradientCheckpointingEnable();
    return this;
  }

  /** Turns the base model's gradient checkpointing off. Returns `this`. */
  gradientCheckpointingDisable(): this {
    checkpointable('PromptLearningModel', this.base_model).gradientCheckpointingDisable();
    return this;
  }

  /** Whether the base model checkpoints its decoder layers. */
  get isGradientCheckpointing(): boolean {
    return isGradientCheckpointing(this.base_model);
  }

  /** The adapter `forward` uses. */
  get activeAdapter(): string {
    return this.active;
  }

  /** Adds an adapter (its encoder starts per the config's init); the active adapter stays. */
  addAdapter(name: string, config: PromptLearningConfig): void {
    if (this.peftConfig.has(name)) throw new Error(`addAdapter: adapter '${name}' already exists`);
    const method = getPromptLearningMethod(config.peftType, 'PromptLearningModel');
    const resolved = checkedPromptConfig(method.resolveConfig(config, this.base_model));
    this.prompt_encoder.set(name, method.createEncoder(resolved, this.base_model));
    this.peftConfig.set(name, resolved);
    this.setAdapter(this.active || name);
  }

  /** Makes `name` the adapter used by `forward`; only its encoder trains (unless in inference mode). */
  setAdapter(name: string): void {
    const config = this.peftConfig.get(name);
    if (!config) throw new Error(`setAdapter: no adapter '${name}' (have: ${[...this.peftConfig.keys()].join(', ')})`);
    this.active = name;
    for (const key of this.prompt_encoder.keys()) {
      const trainable = key === name && !this.peftConfig.get(key)?.inferenceMode;
      for (const p of this.encoder(key).parameters()) p.requiresGrad = trainable;
    }
  }

  /** The encoder of adapter `name` (default: the active one). */
  encoder(name = this.active): PromptEncoder {
    const e = this.prompt_encoder.get(name);
    if (!e) throw new Error(`PromptLearningModel: no adapter '${name}' (have: ${this.prompt_encoder.keys().join(', ')})`);
    return e;
  }

  /** The method of adapter `name`, from the registry. */
  method(name = this.active): PromptLearningMethod<PeftConfig> {
    return getPromptLearningMethod(this.adapterConfig(name).peftType, 'PromptLearningModel');
  }

  /** The base model's config (`generate` reads ids, sizes and limits from it). */
  get config(): CausalLM['config'] {
    const c = (this.base_model as { config?: CausalLM['config'] }).config;
    if (!c) throw new Error('PromptLearningModel: the base model has no config (model_type, vocab_size, sizes), which generate needs');
    return c;
  }

  /** The base model's token embedding. */
  getInputEmbeddings(): ReturnType<CausalLM['getInputEmbeddings']> {
    return this.base_model.getInputEmbeddings();
  }

  /** What `generate` needs: the active adapter's virtual tokens sit in front of every prompt. */
  generationPrefix(): GenerationPrefix {
    return { length: this.adapterConfig(this.active).numVirtualTokens, positions: this.method().positionIds === 'offset' ? 'mask' : 'cache' };
  }

  /**
   * `model.forward` with the active adapter's virtual tokens applied by its method's
   * injection. As in PEFT, `attentionMask` `[B, T]` (or `[B, past + T]` with a cache)
   * covers the input only and gains ones for the virtual tokens, and `positionIds` are
   * shifted by the virtual tokens for prefix methods and refused for methods that
   * prepend embeddings (PEFT ignores them there). With a non-empty `pastKeyValues` the
   * cache is taken to hold the virtual tokens already (an earlier call of this model
   * filled it) and nothing is injected again.
   */
  forward(input: CausalLMInput): CausalLMOutput {
    const config = this.adapterConfig(this.active);
    if (adapterNamesOf('PromptLearningModel', input) !== undefined) {
      throw new Error(`PromptLearningModel: adapterNames (mixed-adapter batches) is not supported for ${config.peftType}: PEFT 0.21 mixes adapters per sample in LoRA layers only`);
    }
    const method = this.method();
    const p = config.numVirtualTokens;
    const mask = input.attentionMask;
    if (mask && mask.rank !== 2) {
      throw new Error(`PromptLearningModel: ${config.peftType} takes a padding mask [B, T]; a per-query attentionMask [${mask.shape.join(', ')}] (packed samples) is not supported`);
    }
    if (input.positionIds && method.positionIds !== 'offset') {
      throw new Error(`PromptLearningModel: ${config.peftType} prepends ${p} virtual tokens and does not take positionIds (PEFT ignores them); positions are 0 .. ${p} + T - 1`);
    }
    const own: Tensor[] = [];
    try {
      const positionIds = input.positionIds ? add(input.positionIds, p) : undefined;
      if (positionIds) own.push(positionIds);
      if ((input.pastKeyValues?.length ?? 0) > 0) {
        const attentionMask = mask ? pad(mask, [
          [0, 0],
          [p, 0],
        ], 1) : undefined;
        if (attentionMask) own.push(attentionMask);
        return this.base_model.forward({ ...input, positionIds, attentionMask });
      }
      const tokens = this.encoder().forward();
      own.push(tokens);
      return method.injection(this.base_model, { ...input, positionIds }, tokens, config);
    } finally {
      for (const t of own) t.dispose();
    }
  }

  /** Trainable and total counts (PEFT's `get_nb_trainable_parameters`). */
  getNbTrainableParameters(): { trainable: number; all: number } {
    return countParameters(this);
  }

  /** Prints and returns PEFT's report line. */
  printTrainableParameters(log: (line: string) => void = console.log): string {
    const line = formatTrainableParameters(this.getNbTrainableParameters());
    log(line);
    return line;
  }

  /** Saves adapters (default: all) in PEFT's format (`prompt_embeddings`); `default` at the root, others in subfolders. */
  saveAdapter(target: AdapterTarget | string, options: { adapterNames?: string[] } = {}): Promise<void> {
    return saveAdapter(this, target, options);
  }

  /**
   * `{ prompt_embeddings }` as PEFT saves it: the encoder's output `[P, width]`
   * (for prefix tuning with projection, the projected prefixes). A new tensor: the caller disposes it.
   */
  adapterStateDict(name = this.active): Map<string, Tensor> {
    return new Map([['prompt_embeddings', this.encoder(name).forward()]]);
  }

  private adapterConfig(name: string): PromptLearningConfig {
    const c = this.peftConfig.get(name);
    if (!c) throw new Error(`PromptLearningModel: no adapter '${name}'`);
    return c;
  }
}

/** `c` when it has the prompt-learning fields an injection reads; otherwise an error naming the method. */
function checkedPromptConfig(c: PeftConfig): PromptLearningConfig {
  if (!hasPromptFields(c)) throw new Error(`${c.peftType}: resolveConfig must return a prompt-learning config (numVirtualTokens, tokenDim, numLayers, numAttentionHeads)`);
  return c;
}

function hasPromptFields(c: PeftConfig): c is PromptLearningConfig {
  const p = c as Partial<PromptLearningConfig>;
  return [p.numVirtualTokens, p.tokenDim, p.numLayers, p.numAttentionHeads].every((v) => typeof v === 'number' && v > 0);
}
