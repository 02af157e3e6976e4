import type { Module } from '@webpeft/nn';
import type { PeftConfig } from './config.js';
import type { TunerLayer } from './tuners/tuner-layer.js';

/**
 * A PEFT method that wraps target modules (LoRA, IA3, or a user's method): a
 * config type with defaults and validation, a layer type, and target selection.
 * Built-in methods are registered through {@link registerPeftMethod} exactly as a
 * user's method is, so `getPeftModel`, adapter management, merging and adapter files
 * treat them alike.
 *
 * @example
 * registerPeftMethod<ScaleConfig>({
 *   peftType: 'SCALE',
 *   resolveConfig: (c) => ({ ...c, targetModules: c.targetModules ?? ['c_attn'] }),
 *   configToJson: (c) => ({ target_modules: c.targetModules }),
 *   configFromJson: (j) => ({ peftType: 'SCALE', targetModules: j.target_modules as string[] }),
 *   isTarget: (path, m, c) => matchesTarget(c, path),
 *   createLayer: (base) => new ScaleLayer(base),
 * });
 */
export interface PeftMethod<C extends PeftConfig = PeftConfig> {
  /** Upper-case name saved as `peft_type`. */
  readonly peftType: string;
  /**
   * Completes a user config with the method's defaults and validates it (throwing a
   * clear error), given the model it will be applied to (for per-model defaults).
   */
  resolveConfig(config: C, model: Module): C;
  /** Method-specific `adapter_config.json` fields (snake_case, as PEFT writes them). */
  configToJson(config: C): Record<string, unknown>;
  /** The config back from `adapter_config.json`. */
  configFromJson(json: Record<string, unknown>): C;
  /** Whether the module at `path` is a target of `config`. May finalise `config` (e.g. expand shorthands) in `prepare`. */
  isTarget(path: string, module: Module, config: C, model: Module): boolean;
  /** Called once per injection before targets are selected; returns the config to use and save. */
  prepare?(config: C, model: Module): C;
  /** A new layer wrapping `base` (the adapter is added by the caller through `addAdapter`). */
  createLayer(base: Module, config: C, path: string): TunerLayer<C>;
  /** Names of trainable base parameters for the config's `bias` mode (paths relative to the model). */
  trainableBiases?(config: C, model: Module): string[];
  /** Modules whose parameters are trained and saved whole (PEFT's `modules_to_save`). */
  modulesToSave?(config: C): string[] | null | undefined;
}

const methods = new Map<string, PeftMethod<PeftConfig>>();

/** Registers `method` under its `peftType` (replacing an earlier one of the same name). */
export function registerPeftMethod<C extends PeftConfig>(method: PeftMethod<C>): void {
  methods.set(method.peftType, method);
}

/** The method registered as `peftType`; throws listing the known ones. */
export function getPeftMethod(peftType: string): PeftMethod<PeftConfig> {
  const m = methods.get(peftType);
  if (!m) throw new Error(`PEFT method '${peftType}' is not registered (known: ${[...methods.keys()].join(', ') || 'none'})`);
  return m;
}

/** Names of the registered methods. */
export function registeredPeftTypes(): string[] {
  return [...methods.keys()];
}
