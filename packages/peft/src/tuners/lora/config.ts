import { type Module, ConfigError, showValue } from '@webpeft/nn';
import { type PeftConfig, configError, resolveCommon } from '../../config.js';
import { AdapterJson, rejectSnakeCase } from '../../config-json.js';
import { ALL_LINEAR, DEFAULT_LORA_TARGETS, modelTypeOf } from '../target-match.js';

/**
 * How LoRA weights start: `true` (A kaiming-uniform, B zero), `'gaussian'` (A ~ N(0, std 1/r), B zero),
 * `false` (both random: no-op start is lost), or one of the initialisations that also rewrite the
 * base weight ({@link BaseRewritingInit}, run by `initLoraFromBase`).
 */
export type LoraInit = boolean | 'gaussian' | BaseRewritingInit;

/**
 * PiSSA (Meng et al. 2024, arXiv:2404.02948): A and B from the top-r singular triplets of W,
 * the base keeps the residual; `'pissa_niter_K'` uses a randomized SVD with K power iterations.
 * OLoRA (Büyükakyüz 2024, arXiv:2406.01775): A and B from the first r rows of R and columns of
 * Q in `W = Q R`, the base keeps the residual.
 * LoftQ (Li et al. 2023, arXiv:2310.08659): alternates quantizing the base and a rank-r SVD of
 * the quantization error (`loftqConfig`).
 */
export type BaseRewritingInit = 'pissa' | `pissa_niter_${number}` | 'olora' | 'loftq';

/** PEFT's `LoftQConfig`: bits of the base quantizer (4: NF4) and alternating steps. */
export interface LoftQConfig {
  /** Bits of the quantized base (default 4: NF4, bitsandbytes' blockwise 64 without double quantization). */
  loftqBits?: number;
  /** Alternating quantize / SVD steps (default 1). */
  loftqIter?: number;
}

/** True when `init` rewrites the base weight (PiSSA, OLoRA, LoftQ): such adapters need `initLoraFromBase`. */
export function isBaseRewritingInit(init: unknown): init is BaseRewritingInit {
  return init === 'pissa' || init === 'olora' || init === 'loftq' || (typeof init === 'string' && /^pissa_niter_[1-9]\d*$/.test(init));
}

/**
 * LoRA configuration with PEFT's `LoraConfig` defaults (LoRA: Hu et al. 2021,
 * arXiv:2106.09685; rsLoRA: Kalajdzievski 2023; DoRA: Liu et al. 2024).
 */
export interface LoraConfig extends PeftConfig {
  peftType: 'LORA';
  /** Rank (default 8). */
  r?: number;
  /** Scaling numerator: `scaling = loraAlpha / r` (default 8). */
  loraAlpha?: number;
  /** Dropout on the LoRA branch input (default 0). */
  loraDropout?: number;
  /**
   * Which modules: names matched exactly or as a dotted suffix, one regex string
   * (full match), or `'all-linear'`. Default: per `config.model_type` (gpt2 `c_attn`,
   * llama `q_proj, v_proj`, ...).
   */
  targetModules?: string[] | string;
  /** Modules never wrapped (same matching as `targetModules`). */
  excludeModules?: string[] | string | null;
  /** The base stores `[in, out]` (GPT-2 Conv1D); set automatically when a Conv1D is targeted. */
  fanInFanOut?: boolean;
  /** Which biases train: `'none'` (default), `'all'`, or `'lora_only'` (biases of wrapped layers). */
  bias?: 'none' | 'all' | 'lora_only';
  /** rsLoRA: `scaling = loraAlpha / sqrt(r)`. */
  useRslora?: boolean;
  /** DoRA: learn a per-output-row magnitude. */
  useDora?: boolean;
  /** Initialisation (default `true`). */
  initLoraWeights?: LoraInit;
  /** LoftQ's settings; required with `initLoraWeights: 'loftq'` and only then (PEFT's `loftq_config`). */
  loftqConfig?: LoftQConfig | null;
  /** Rank per module (key matched as a dotted suffix regex). */
  rankPattern?: Record<string, number>;
  /** Alpha per module (key matched as a dotted suffix regex). */
  alphaPattern?: Record<string, number>;
  /** Only these layer indices (needs list `targetModules`). */
  layersToTransform?: number[] | number | null;
  /** The module-list name preceding the layer index (`layers`, `h`). */
  layersPattern?: string[] | string | null;
  /** Modules trained and saved whole (e.g. a classifier head). */
  modulesToSave?: string[] | null;
}

/** A LoRA config with every field filled. */
export type ResolvedLoraConfig = Required<Omit<LoraConfig, keyof PeftConfig>> & PeftConfig & { peftType: 'LORA' };

/** PEFT's LoRA defaults. */
export const LORA_DEFAULTS = {
  r: 8,
  loraAlpha: 8,
  loraDropout: 0,
  fanInFanOut: false,
  bias: 'none',
  useRslora: false,
  useDora: false,
  initLoraWeights: true,
} as const;

/**
 * Fills defaults and validates; per-model default targets come from `model.config.model_type`.
 * @example resolveLoraConfig({ peftType: 'LORA', r: 16, loraAlpha: 32, targetModules: 'all-linear' }, model)
 */
export function resolveLoraConfig(c: LoraConfig, model?: Module): ResolvedLoraConfig {
  rejectSnakeCase(c, 'LORA');
  const r = c.r ?? LORA_DEFAULTS.r;
  if (!(typeof r === 'number' && Number.isSafeInteger(r) && r > 0)) configError('LORA', `r must be a positive integer, got ${showValue(r)}`, 'r');
  const loraAlpha = c.loraAlpha ?? LORA_DEFAULTS.loraAlpha;
  if (!(typeof loraAlpha === 'number' && Number.isFinite(loraAlpha))) configError('LORA', `loraAlpha must be a finite number, got ${showValue(loraAlpha)}`, 'loraAlpha');
  const loraDropout = c.loraDropout ?? LORA_DEFAULTS.loraDropout;
  if (!(typeof loraDropout === 'number' && loraDropout >= 0 && loraDropout < 1)) configError('LORA', `loraDropout must be in [0, 1), got ${showValue(loraDropout)}`, 'loraDropout');
  const bias = c.bias ?? LORA_DEFAULTS.bias;
  if (!['none', 'all', 'lora_only'].includes(bias)) configError('LORA', `bias must be 'none', 'all' or 'lora_only', got ${showValue(bias)}`, 'bias');
  const init = c.initLoraWeights ?? LORA_DEFAULTS.initLoraWeights;
  if (init !== true && init !== false && init !== 'gaussian' && !isBaseRewritingInit(init)) {
    configError('LORA', `initLoraWeights must be true, false, 'gaussian', 'pissa', 'pissa_niter_K' (K >= 1), 'olora' or 'loftq', got ${JSON.stringify(init)} (other PEFT initialisations are not supported)`, 'initLoraWeights');
  }
  const loftqConfig = resolveLoftQConfig(c.loftqConfig, init);
  for (const key of ['fanInFanOut', 'useRslora', 'useDora'] as const) {
    if (c[key] !== undefined && typeof c[key] !== 'boolean') configError('LORA', `${key} must be true or false, got ${showValue(c[key])}`, key);
  }
  checkNames('LORA', 'targetModules', c.targetModules);
  checkNames('LORA', 'excludeModules', c.excludeModules);
  checkNames('LORA', 'layersPattern', c.layersPattern);
  if (c.modulesToSave != null && !(Array.isArray(c.modulesToSave) && c.modulesToSave.every((m) => typeof m === 'string'))) {
    configError('LORA', `modulesToSave must be a list of module names or null, got ${showValue(c.modulesToSave)}`, 'modulesToSave');
  }
  const lt = c.layersToTransform;
  const isIndex = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (lt != null && !(isIndex(lt) || (Array.isArray(lt) && lt.every(isIndex)))) configError('LORA', `layersToTransform must be a layer index or a list of them, got ${showValue(lt)}`, 'layersToTransform');
  let targetModules = c.targetModules;
  if (targetModules === undefined || targetModules === null) {
    const type = model ? modelTypeOf(model) : undefined;
    const defaults = type ? DEFAULT_LORA_TARGETS[type] : undefined;
    if (!defaults) configError('LORA', `targetModules is required: no default targets for model type '${type ?? 'unknown'}' (pass a list, a regex, or 'all-linear')`, 'targetModules');
    targetModules = [...defaults];
  }
  if (Array.isArray(targetModules) && targetModules.length === 0) configError('LORA', 'targetModules is an empty list', 'targetModules');
  const layersToTransform = c.layersToTransform ?? null;
  const layersPattern = c.layersPattern ?? null;
  if (typeof targetModules === 'string' && targetModules !== ALL_LINEAR) {
    if (layersToTransform !== null) configError('LORA', '`layersToTransform` cannot be used when `targetModules` is a regex string', 'layersToTransform');
    if (layersPattern !== null) configError('LORA', '`layersPattern` cannot be used when `targetModules` is a regex string', 'layersPattern');
  }
  if (layersPattern && (layersToTransform === null || (Array.isArray(layersToTransform) && layersToTransform.length === 0))) {
    configError('LORA', 'when `layersPattern` is specified, `layersToTransform` must also be specified', 'layersPattern');
  }
  const checkPattern = (name: string, p: Record<string, number> | undefined) => {
    if (p != null && (typeof p !== 'object' || Array.isArray(p))) configError('LORA', `${name} must be an object of module pattern -> number, got ${showValue(p)}`, name);
    for (const [k, v] of Object.entries(p ?? {})) if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) configError('LORA', `${name}['${k}'] must be a positive number, got ${showValue(v)}`, name);
  };
  checkPattern('rankPattern', c.rankPattern);
  checkPattern('alphaPattern', c.alphaPattern);
  for (const [k, v] of Object.entries(c.rankPattern ?? {})) if (!Number.isInteger(v)) configError('LORA', `rankPattern['${k}'] must be an integer, got ${v}`, 'rankPattern');
  return resolveCommon({
    ...c,
    peftType: 'LORA',
    r,
    loraAlpha,
    loraDropout,
    targetModules,
    excludeModules: c.excludeModules ?? null,
    fanInFanOut: c.fanInFanOut ?? LORA_DEFAULTS.fanInFanOut,
    bias,
    useRslora: c.useRslora ?? LORA_DEFAULTS.useRslora,
    useDora: c.useDora ?? LORA_DEFAULTS.useDora,
    initLoraWeights: init,
    loftqConfig,
    rankPattern: { ...(c.rankPattern ?? {}) },
    alphaPattern: { ...(c.alphaPattern ?? {}) },
    layersToTransform,
    layersPattern,
    modulesToSave: c.modulesToSave ?? null,
  });
}

/**
 * The LoRA fields of `adapter_config.json` as PEFT (v0.14 field set) writes them;
 * fields for features this package does not implement carry PEFT's defaults.
 */
export function loraConfigToJson(c: ResolvedLoraConfig): Record<string, unknown> {
  return {
    r: c.r,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    target_modules: c.targetModules,
    exclude_modules: c.excludeModules,
    fan_in_fan_out: c.fanInFanOut,
    bias: c.bias,
    use_rslora: c.useRslora,
    use_dora: c.useDora,
    init_lora_weights: c.initLoraWeights,
    modules_to_save: c.modulesToSave,
    layers_to_transform: c.layersToTransform,
    layers_pattern: c.layersPattern,
    rank_pattern: c.rankPattern,
    alpha_pattern: c.alphaPattern,
    megatron_config: null,
    megatron_core: 'megatron.core',
    loftq_config: c.loftqConfig ? { loftq_bits: c.loftqConfig.loftqBits, loftq_iter: c.loftqConfig.loftqIter } : {},
    eva_config: null,
    layer_replication: null,
    lora_bias: false,
  };
}

/**
 * A LoRA config from `adapter_config.json`, every field type-checked (a bad one throws a
 * `ConfigError` naming it); unknown fields are ignored, as PEFT ignores them, and
 * unsupported features are rejected.
 */
export function loraConfigFromJson(j: Record<string, unknown>): LoraConfig {
  const f = new AdapterJson(j, 'LORA');
  if (f.bool('lora_bias', false)) configError('LORA', 'lora_bias=true adapters are not supported', 'lora_bias');
  if (j.layer_replication != null) configError('LORA', 'layer_replication adapters are not supported', 'layer_replication');
  const init = j.init_lora_weights;
  if (!(init === undefined || init === null || typeof init === 'boolean' || typeof init === 'string')) f.fail('init_lora_weights', 'true, false or the name of a PEFT initialisation');
  if (typeof init === 'string') checkLoadableInit(init);
  const loftq = init === 'loftq' ? loftqConfigFromJson(f, j.loftq_config) : null;
  // null (or absent) takes the model type's default targets, as PEFT does.
  const targetModules = f.names('target_modules') ?? undefined;
  return {
    peftType: 'LORA',
    r: f.posInt('r', LORA_DEFAULTS.r),
    loraAlpha: f.number('lora_alpha', LORA_DEFAULTS.loraAlpha),
    loraDropout: f.number('lora_dropout', 0, { min: 0, maxExclusive: 1 }),
    targetModules,
    excludeModules: f.names('exclude_modules'),
    fanInFanOut: f.bool('fan_in_fan_out', false),
    bias: f.oneOf('bias', ['none', 'all', 'lora_only'] as const, 'none'),
    useRslora: f.bool('use_rslora', false),
    useDora: f.bool('use_dora', false),
    // PiSSA, OLoRA and LoftQ rebuild their residual base on load, as PEFT does (initLoraFromBase).
    initLoraWeights: init === false ? false : init === 'gaussian' || init === 'pissa' || init === 'olora' || init === 'loftq' ? init : true,
    ...(loftq ? { loftqConfig: loftq } : {}),
    rankPattern: f.patterns('rank_pattern', true),
    alphaPattern: f.patterns('alpha_pattern', false),
    layersToTransform: f.indices('layers_to_transform'),
    layersPattern: f.names('layers_pattern'),
    modulesToSave: f.nameList('modules_to_save'),
  };
}

/** `loftq_config` of a LoftQ adapter: `{ loftq_bits, loftq_iter }` (PEFT's defaults 4 and 1). */
function loftqConfigFromJson(f: AdapterJson, v: unknown): LoftQConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return f.fail('loftq_config', "an object { loftq_bits, loftq_iter } (init_lora_weights is 'loftq')");
  const o = v as Record<string, unknown>;
  const bits = o.loftq_bits ?? 4;
  const iter = o.loftq_iter ?? 1;
  if (typeof bits !== 'number' || typeof iter !== 'number') return f.fail('loftq_config', 'numbers loftq_bits and loftq_iter');
  return { loftqBits: bits, loftqIter: iter };
}

/** PEFT initialisations that only set A and B, which the loaded weights overwrite. */
const LOADABLE_INITS = ['gaussian', 'eva', 'orthogonal', 'lora_ga'];
/** PEFT initialisations that also rewrite the base weights (PiSSA, CorDA, OLoRA, MiCA, LoftQ). */
const BASE_REWRITING_INITS = /^(pissa|corda|olora|mica|loftq)/i;

/**
 * Accepts an `init_lora_weights` name whose adapter loads as plain LoRA; rejects the
 * initialisations that rewrite the base weights (loading their A and B onto the
 * original base would not reproduce PEFT's model) and names PEFT does not know.
 */
function checkLoadableInit(init: string): void {
  if (LOADABLE_INITS.includes(init.toLowerCase())) return;
  // Deterministic base rewrites: the loader rebuilds the residual base from the original, as PEFT does.
  if (init === 'pissa' || init === 'olora' || init === 'loftq') return;
  if (BASE_REWRITING_INITS.test(init)) {
    throw new ConfigError(
      `LORA adapter config: 'init_lora_weights' ${JSON.stringify(init)} rewrites the base weights at init in a way that cannot be rebuilt here (pissa_niter_K is random; CorDA and MiCA are not implemented): convert the adapter to plain LoRA with PEFT's path_initial_model_for_weight_conversion`,
      undefined,
      'init_lora_weights',
    );
  }
  throw new ConfigError(`LORA adapter config: 'init_lora_weights' must be true, false or one of PEFT's initialisations, got ${JSON.stringify(init)}`, undefined, 'init_lora_weights');
}

/** PEFT's LoftQ rules: `loftqConfig` with `'loftq'` only, 4 or 8 bits, at least one step. */
function resolveLoftQConfig(c: LoftQConfig | null | undefined, init: unknown): Required<LoftQConfig> | null {
  if (c == null) {
    if (init === 'loftq') configError('LORA', "loftqConfig ({ loftqBits, loftqIter }) is required when initLoraWeights is 'loftq'", 'loftqConfig');
    return null;
  }
  if (init !== 'loftq') configError('LORA', `loftqConfig applies only to initLoraWeights 'loftq' (got ${JSON.stringify(init)})`, 'loftqConfig');
  if (typeof c !== 'object' || Array.isArray(c)) configError('LORA', `loftqConfig must be an object { loftqBits, loftqIter }, got ${showValue(c)}`, 'loftqConfig');
  const loftqBits = c.loftqBits ?? 4;
  const loftqIter = c.loftqIter ?? 1;
  if (loftqBits !== 4 && loftqBits !== 8) configError('LORA', `loftqConfig.loftqBits must be 4 or 8, got ${showValue(loftqBits)}`, 'loftqConfig');
  if (!(Number.isSafeInteger(loftqIter) && loftqIter > 0)) configError('LORA', `loftqConfig.loftqIter must be a positive integer, got ${showValue(loftqIter)}`, 'loftqConfig');
  return { loftqBits, loftqIter };
}

/** Checks that a module-name field is a string or a list of strings (or absent/null). */
export function checkNames(peftType: string, key: string, v: unknown): void {
  if (v === undefined || v === null || typeof v === 'string') return;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return;
  configError(peftType, `${key} must be a module name regex (a string) or a list of module names, got ${showValue(v)}`, key);
}

/** `loraAlpha / r`, or `loraAlpha / sqrt(r)` with rsLoRA. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
