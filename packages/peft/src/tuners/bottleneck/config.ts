import type { Module } from '@webpeft/nn';
import { type PeftConfig, configError, resolveCommon } from '../../config.js';
import { modelDims } from '../../prompt/config.js';
import { modelTypeOf } from '../target-match.js';

/**
 * Bottleneck adapters: Houlsby et al. 2019 (arXiv:1902.00751), the Pfeiffer et al. 2020
 * single-adapter placement (arXiv:2005.00247) and the parallel adapter of He et al. 2021
 * (arXiv:2110.04366). Field names follow AdapterHub's `BnConfig` / `SeqBnConfig` /
 * `DoubleSeqBnConfig` / `ParBnConfig` where one exists (camelCase here, snake_case in
 * `adapter_config.json`); `bottleneckSize`, `attentionModules` and `feedforwardModules`
 * are ours. The defaults are Houlsby's placement (`DoubleSeqBnConfig`).
 *
 * Placement on a pre-norm decoder block `h = x + attn(ln_1(x)); y = h + mlp(ln_2(h))`:
 * the adapter wraps the sublayer module (`attn` / `self_attn`, `mlp`) and the model adds
 * the residual after it, which is AdapterHub's `original_ln_before: false,
 * original_ln_after: true` on these models (they pass no sublayer layer norm).
 */
export interface BottleneckConfig extends PeftConfig {
  peftType: 'BOTTLENECK';
  /** An adapter after the attention sublayer (Houlsby: true; Pfeiffer, parallel: false). Default true. */
  mhAdapter?: boolean;
  /** An adapter after the feed-forward sublayer. Default true. */
  outputAdapter?: boolean;
  /** Bottleneck width = floor(hidden / reductionFactor), at least 1. Default 16 (AdapterHub's; parallel: 2). */
  reductionFactor?: number;
  /** Bottleneck width given directly (overrides `reductionFactor`). */
  bottleneckSize?: number | null;
  /** `relu`, `gelu` (erf), `gelu_new` (tanh approximation), `swish` / `silu`, `tanh`. Default `swish` (Houlsby in AdapterHub). */
  nonLinearity?: string;
  /**
   * Parallel adapter (He et al.): it reads the sublayer's input and `scaling * adapter(x)`
   * is added to the sublayer's output. Default false (sequential: it reads the output).
   */
  isParallel?: boolean;
  /** Multiplies the up-projection's output (He et al.'s `s`). Default 1 (parallel: 4, as `ParBnConfig`). */
  scaling?: number;
  /** A LayerNorm on the adapter's input (`adapter_norm_before`). Default false. */
  lnBefore?: boolean;
  /** A LayerNorm on the adapter's output (`adapter_norm_after`). Default false. */
  lnAfter?: boolean;
  /** With `lnAfter`: add the adapter's own residual before that norm (true) or after it (false, default). */
  adapterResidualBeforeLn?: boolean;
  /** Must be false here: the adapter sees the sublayer output, not output + residual (see the type's doc). */
  originalLnBefore?: boolean;
  /** Must be true here: the model adds the block residual after the adapter. */
  originalLnAfter?: boolean;
  /** Which tensor the adapter's own skip connection adds: the sublayer output (AdapterHub's default true; false is the same tensor here). */
  residualBeforeLn?: boolean;
  /**
   * `bert` (down and up ~ N(0, 0.02), biases 0: near identity; AdapterHub's default for
   * sequential adapters), `mam_adapter` (down kaiming-uniform, up and biases 0: exactly the
   * identity at init; AdapterHub's parallel default), `houlsby` (down and up ~ N(0, 1e-2)
   * truncated at ±2e-2, biases 0).
   */
  initWeights?: 'bert' | 'mam_adapter' | 'houlsby';
  /** Dropout on the adapter's output (after scaling) while training. Default 0. */
  dropout?: number;
  /** Layer indices that get no adapter (AdapterHub's `leave_out`). Default none. */
  leaveOut?: number[];
  /** Attention sublayer module names (suffix match). Default by model type: `attn` (GPT-2), `self_attn` (LLaMA family). */
  attentionModules?: string[];
  /** Feed-forward sublayer module names (suffix match). Default `mlp`. */
  feedforwardModules?: string[];
  /** Hidden size of the model (default: from `model.config`); not saved. */
  hiddenSize?: number;
}

/** A bottleneck config with every field filled. */
export type ResolvedBottleneckConfig = Required<Omit<BottleneckConfig, keyof PeftConfig | 'bottleneckSize'>> &
  PeftConfig & { peftType: 'BOTTLENECK'; bottleneckSize: number | null };

/**
 * What {@link BottleneckLayer} reads: a resolved bottleneck config under any method
 * name, so a user's method can build on the layer with its own `peftType`.
 */
export type BottleneckLayerConfig = Omit<ResolvedBottleneckConfig, 'peftType'> & PeftConfig;

/** The nonlinearities a bottleneck adapter accepts (AdapterHub's names). */
export const BOTTLENECK_NONLINEARITIES = ['relu', 'gelu', 'gelu_new', 'swish', 'silu', 'tanh'] as const;

const INITS = ['bert', 'mam_adapter', 'houlsby'] as const;

const ATTENTION_MODULES: Record<string, string[]> = { gpt2: ['attn'], llama: ['self_attn'], mistral: ['self_attn'], qwen2: ['self_attn'] };
const FEEDFORWARD_MODULES: Record<string, string[]> = { gpt2: ['mlp'], llama: ['mlp'], mistral: ['mlp'], qwen2: ['mlp'] };

/**
 * Fills defaults (AdapterHub's for the chosen placement) and validates every field,
 * naming it in the error. `model` gives the hidden size and the default sublayer names.
 */
export function resolveBottleneckConfig(c: BottleneckConfig, model?: Module): ResolvedBottleneckConfig {
  const err = (m: string): never => configError('BOTTLENECK', m);
  const bool = (name: keyof BottleneckConfig, v: unknown, dflt: boolean): boolean => {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') err(`${name} must be a boolean, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const isParallel = bool('isParallel', c.isParallel, false);
  const mhAdapter = bool('mhAdapter', c.mhAdapter, true);
  const outputAdapter = bool('outputAdapter', c.outputAdapter, true);
  if (!mhAdapter && !outputAdapter) err('mhAdapter and outputAdapter are both false: the adapter would be inserted nowhere');
  const reductionFactor = c.reductionFactor ?? (isParallel ? 2 : 16);
  if (typeof reductionFactor !== 'number' || !Number.isFinite(reductionFactor) || reductionFactor <= 0) err(`reductionFactor must be a positive number, got ${JSON.stringify(reductionFactor)}`);
  const bottleneckSize = c.bottleneckSize ?? null;
  if (bottleneckSize !== null && !(Number.isInteger(bottleneckSize) && bottleneckSize > 0)) err(`bottleneckSize must be a positive integer, got ${JSON.stringify(bottleneckSize)}`);
  const nonLinearity = c.nonLinearity ?? 'swish';
  if (!(BOTTLENECK_NONLINEARITIES as readonly string[]).includes(nonLinearity)) err(`nonLinearity must be one of ${BOTTLENECK_NONLINEARITIES.join(', ')}, got ${JSON.stringify(nonLinearity)}`);
  const scaling = c.scaling ?? (isParallel ? 4 : 1);
  if (typeof scaling !== 'number' || !Number.isFinite(scaling)) err(`scaling must be a finite number (AdapterHub's 'learned' and 'channel' are not supported), got ${JSON.stringify(scaling)}`);
  const initWeights = c.initWeights ?? (isParallel ? 'mam_adapter' : 'bert');
  if (!(INITS as readonly string[]).includes(initWeights)) err(`initWeights must be one of ${INITS.join(', ')}, got ${JSON.stringify(initWeights)}`);
  const dropout = c.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) err(`dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  if (bool('originalLnBefore', c.originalLnBefore, false)) {
    err('originalLnBefore true (the adapter reading sublayer output + residual) is not supported: on pre-norm decoders the adapter wraps the sublayer and sees its output only');
  }
  if (!bool('originalLnAfter', c.originalLnAfter, true)) err('originalLnAfter false (dropping the block residual) is not supported: the model adds the residual after the sublayer');
  const leaveOut = c.leaveOut ?? [];
  if (!Array.isArray(leaveOut) || leaveOut.some((i) => !Number.isInteger(i) || i < 0)) err(`leaveOut must be a list of layer indices, got ${JSON.stringify(leaveOut)}`);
  const type = model ? modelTypeOf(model) : undefined;
  const names = (field: 'attentionModules' | 'feedforwardModules', table: Record<string, string[]>, needed: boolean): string[] => {
    const v = c[field] ?? (type ? table[type] : undefined);
    if (v === undefined) {
      if (needed) err(`${field} is required: no default sublayer names for model type '${type ?? 'unknown'}'`);
      return [];
    }
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.length === 0)) err(`${field} must be a list of module names, got ${JSON.stringify(v)}`);
    return v;
  };
  const hiddenSize = c.hiddenSize ?? (model ? modelDims(model)?.hidden : undefined);
  if (!(Number.isInteger(hiddenSize) && (hiddenSize as number) > 0)) err('hiddenSize is required when the model has no config with its hidden size');
  return resolveCommon({
    ...c,
    peftType: 'BOTTLENECK',
    mhAdapter,
    outputAdapter,
    reductionFactor,
    bottleneckSize,
    nonLinearity,
    isParallel,
    scaling,
    lnBefore: bool('lnBefore', c.lnBefore, false),
    lnAfter: bool('lnAfter', c.lnAfter, false),
    adapterResidualBeforeLn: bool('adapterResidualBeforeLn', c.adapterResidualBeforeLn, false),
    originalLnBefore: false,
    originalLnAfter: true,
    residualBeforeLn: bool('residualBeforeLn', c.residualBeforeLn, true),
    initWeights,
    dropout,
    leaveOut,
    attentionModules: names('attentionModules', ATTENTION_MODULES, mhAdapter),
    feedforwardModules: names('feedforwardModules', FEEDFORWARD_MODULES, outputAdapter),
    hiddenSize: hiddenSize as number,
  });
}

/** The bottleneck width for `c`: `bottleneckSize`, else floor(hidden / reductionFactor), at least 1 (AdapterHub's rule). */
export function bottleneckWidth(c: BottleneckLayerConfig): number {
  return c.bottleneckSize ?? Math.max(1, Math.floor(c.hiddenSize / c.reductionFactor));
}

/** JSON field -> config field, for every method field of `adapter_config.json`. */
const JSON_FIELDS = {
  mh_adapter: 'mhAdapter',
  output_adapter: 'outputAdapter',
  reduction_factor: 'reductionFactor',
  bottleneck_size: 'bottleneckSize',
  non_linearity: 'nonLinearity',
  is_parallel: 'isParallel',
  scaling: 'scaling',
  ln_before: 'lnBefore',
  ln_after: 'lnAfter',
  adapter_residual_before_ln: 'adapterResidualBeforeLn',
  original_ln_before: 'originalLnBefore',
  original_ln_after: 'originalLnAfter',
  residual_before_ln: 'residualBeforeLn',
  init_weights: 'initWeights',
  dropout: 'dropout',
  leave_out: 'leaveOut',
  attention_modules: 'attentionModules',
  feedforward_modules: 'feedforwardModules',
} as const satisfies Record<string, keyof BottleneckConfig>;

/** Fields every `adapter_config.json` may have (read by the common code). */
const COMMON_JSON_FIELDS = new Set(['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping', 'peft_version']);

/** `adapter_config.json` fields of a resolved bottleneck config (AdapterHub's names). */
export function bottleneckConfigToJson(c: ResolvedBottleneckConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [json, field] of Object.entries(JSON_FIELDS)) out[json] = c[field];
  return out;
}

/**
 * A bottleneck config from `adapter_config.json`. Unknown fields throw naming them (a
 * misspelt `reduction_factor` must not silently give the default); values are checked
 * by {@link resolveBottleneckConfig}, which names the field.
 */
export function bottleneckConfigFromJson(j: Record<string, unknown>): BottleneckConfig {
  const unknown = Object.keys(j).filter((k) => !(k in JSON_FIELDS) && !COMMON_JSON_FIELDS.has(k));
  if (unknown.length > 0) configError('BOTTLENECK', `unknown field(s) in adapter_config.json: ${unknown.join(', ')} (known: ${Object.keys(JSON_FIELDS).join(', ')})`);
  const c: Record<string, unknown> = { peftType: 'BOTTLENECK' };
  for (const [json, field] of Object.entries(JSON_FIELDS)) if (j[json] !== undefined && j[json] !== null) c[field] = j[json];
  if (j.bottleneck_size === null) c.bottleneckSize = null;
  // Each value's type and range is checked now, field by field, so a bad file fails on
  // its config before any weight is read or any layer is planned.
  const config = c as unknown as BottleneckConfig;
  // The model-dependent fields (hidden size, sublayer names) get stand-ins here when the
  // file leaves them to the model; they are resolved against the model when it is wrapped.
  resolveBottleneckConfig({ ...config, hiddenSize: config.hiddenSize ?? 1, attentionModules: config.attentionModules ?? ['attention'], feedforwardModules: config.feedforwardModules ?? ['feedforward'] });
  return config;
}
