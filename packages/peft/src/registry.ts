import type { Module } from '@webpeft/nn';
import type { PeftConfig } from './config.js';
import type { PromptEncoder, PromptableModel, PromptInjection } from './prompt/encoder.js';
import type { PromptLearningConfig } from './prompt/config.js';
import type { TunerLayer } from './tuners/tuner-layer.js';

/** Options of `PeftModel.mergeAndUnload` (and of a method's {@link TunerMethod.unloadLayer}). */
export interface MergeAndUnloadOptions {
  /** Adapters to merge (default: the active ones). */
  adapterNames?: string[];
  /**
   * Replace each wrapped linear-like layer by a plain `Linear` (f32; f16 in an f16 model) built from the
   * merged weight (keeps full precision over a quantized base). Default false: the
   * merged weight goes back into the base through `loadWeight` (a 4-bit base re-quantizes).
   * Only methods with an {@link TunerMethod.unloadLayer} support it.
   */
  dequantize?: boolean;
}

/** What every method has: a name, config defaults and validation, and `adapter_config.json` fields. */
export interface PeftMethodBase<C extends PeftConfig> {
  /** Upper-case name saved as `peft_type`. */
  readonly peftType: string;
  /**
   * Completes a user config with the method's defaults and validates it (throwing a
   * clear error), given the model it will be applied to (for per-model defaults).
   */
  resolveConfig(config: C, model: Module): C;
  /** Method-specific `adapter_config.json` fields (snake_case, as PEFT writes them). */
  configToJson(config: C): Record<string, unknown>;
  /** The config back from `adapter_config.json` (the common fields are added by the caller). */
  configFromJson(json: Record<string, unknown>): C;
}

/**
 * A method that wraps target modules (LoRA, IA3, or a user's method): target selection
 * and a {@link TunerLayer} subclass holding the per-adapter tensors.
 *
 * @example
 * registerPeftMethod<ScaleConfig>({
 *   peftType: 'SCALE',
 *   resolveConfig: (c) => resolveCommon({ ...c, targetModules: c.targetModules ?? ['c_attn'] }),
 *   configToJson: (c) => ({ target_modules: c.targetModules }),
 *   configFromJson: (j) => ({ peftType: 'SCALE', targetModules: j.target_modules as string[] }),
 *   isTarget: (path, m, c) => matchesTarget({ targetModules: c.targetModules }, path) && isLinearLike(m),
 *   createLayer: (base) => { if (!isLinearLike(base)) throw new Error('SCALE: linear layers only'); return new ScaleLayer(base); },
 * });
 */
export interface TunerMethod<C extends PeftConfig = PeftConfig> extends PeftMethodBase<C> {
  /** `'tuner'` (the default when absent). */
  readonly kind?: 'tuner';
  /** Whether the module at `path` is a target of `config` (a layer of this method already there counts). */
  isTarget(path: string, module: Module, config: C, model: Module): boolean;
  /** Called once per injection before targets are selected; returns the config to use and save (e.g. with shorthands expanded). */
  prepare?(config: C, model: Module): C;
  /** A new layer wrapping `base` (the adapter is added by the caller through `addAdapter`). */
  createLayer(base: Module, config: C, path: string): TunerLayer<C, string, Module, unknown>;
  /** Names of trainable base parameters for the config's `bias` mode (paths relative to the model). */
  trainableBiases?(config: C, model: Module): string[];
  /** Modules whose parameters are trained and saved whole (PEFT's `modules_to_save`). */
  modulesToSave?(config: C): string[] | null | undefined;
  /**
   * The module that replaces `layer` in `mergeAndUnload`, with `adapterNames` (those the
   * layer holds) merged in. Absent: `layer.merge(adapterNames)`, then its base layer.
   */
  unloadLayer?(layer: TunerLayer<C, string, Module, unknown>, adapterNames: string[], options: MergeAndUnloadOptions): Module | Promise<Module>;
}

/**
 * A prompt-learning method (prompt tuning, prefix tuning, or a user's method): the
 * model stays unwrapped; an encoder per adapter makes virtual tokens, and an injection
 * says how the model consumes them (prepended to the input embeddings, or as per-layer
 * prefix keys/values). Saved as PEFT does: `prompt_embeddings`, the encoder's output.
 *
 * @example
 * registerPeftMethod<MyPromptConfig>({
 *   kind: 'prompt',
 *   peftType: 'MY_PROMPT',
 *   resolveConfig: (c, model) => resolvePromptLearningConfig(c, model),
 *   configToJson: promptLearningConfigToJson,
 *   configFromJson: (j) => ({ ...promptLearningConfigFromJson(j), peftType: 'MY_PROMPT' }),
 *   createEncoder: (c, model) => new MyEncoder(c, backendOf(model)),
 *   injection: prependVirtualTokens,
 * });
 */
export interface PromptLearningMethod<C extends PeftConfig = PromptLearningConfig> extends PeftMethodBase<C> {
  readonly kind: 'prompt';
  /**
   * The encoder of one adapter (`prompt_encoder.<name>`). With `config.inferenceMode`
   * its `embedding` must hold `prompt_embeddings` as saved (the encoder's output shape).
   */
  createEncoder(config: C, model: PromptableModel): PromptEncoder;
  /** How the model consumes the virtual tokens. */
  readonly injection: PromptInjection;
  /**
   * What `positionIds` mean to the method (PEFT's `_adjust_prompt_learning_kwargs`):
   * `'offset'` (prefix keys/values) shifts them by the number of virtual tokens, which
   * take the positions in front; `'unsupported'` (default: prepended virtual tokens,
   * whose positions PEFT ignores) refuses them, and `generate` passes none.
   */
  readonly positionIds?: 'offset' | 'unsupported';
  /**
   * The config to build the encoder with before saved `prompt_embeddings` overwrite it
   * (e.g. no TEXT init, which needs a tokenizer); throws when the saved tensor cannot be
   * loaded as asked (`trainable`). Default: the config as read.
   */
  configForLoading?(config: C, trainable: boolean): C;
}

/** Any method: a tuner or a prompt-learning method (tell them apart by `kind`). */
export type PeftMethod<C extends PeftConfig = PeftConfig> = TunerMethod<C> | PromptLearningMethod<C>;

/** A method as the registry hands it out (its config type is the caller's to know). */
export type RegisteredPeftMethod = PeftMethod<PeftConfig>;

const methods = new Map<string, RegisteredPeftMethod>();

/**
 * Registers `method` under its `peftType` (replacing an earlier one of the same name).
 * Built-in methods go through here exactly as a user's method does.
 */
export function registerPeftMethod<C extends PromptLearningConfig>(method: PromptLearningMethod<C>): void;
export function registerPeftMethod<C extends PeftConfig>(method: TunerMethod<C>): void;
export function registerPeftMethod(method: { readonly peftType: string; readonly kind?: 'tuner' | 'prompt' }): void {
  // The registry hands methods out by name only: their config type is the caller's to know.
  methods.set(method.peftType, method as unknown as RegisteredPeftMethod);
}

/** The method registered as `peftType`; throws listing the known ones. */
export function getPeftMethod(peftType: string): RegisteredPeftMethod {
  const m = methods.get(peftType);
  if (!m) throw new Error(`PEFT method '${peftType}' is not registered (known: ${[...methods.keys()].join(', ') || 'none'})`);
  return m;
}

/** The tuner method `peftType`; throws when it is missing or a prompt-learning method. */
export function getTunerMethod(peftType: string, caller: string): TunerMethod<PeftConfig> {
  const m = getPeftMethod(peftType);
  if (m.kind === 'prompt') throw new Error(`${caller}: ${peftType} is a prompt-learning method; use getPeftModel / loadPromptLearningModel, which give a PromptLearningModel`);
  return m;
}

/** The prompt-learning method `peftType`; throws when it is missing or a tuner method. */
export function getPromptLearningMethod(peftType: string, caller: string): PromptLearningMethod<PeftConfig> {
  const m = getPeftMethod(peftType);
  if (m.kind !== 'prompt') throw new Error(`${caller}: ${peftType} is not a prompt-learning method; use getPeftModel / loadPeftModel, which give a PeftModel`);
  return m;
}

/** True when `peftType` is registered as a prompt-learning method. */
export function isPromptLearningType(peftType: string): boolean {
  return methods.get(peftType)?.kind === 'prompt';
}

/** Names of the registered methods. */
export function registeredPeftTypes(): string[] {
  return [...methods.keys()];
}
