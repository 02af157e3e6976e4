/**
 * The `quantization_config` transformers writes into `config.json` for a bitsandbytes
 * 4-bit model (`BitsAndBytesConfig(...).to_dict()` plus `quant_method`), read strictly
 * and written back in the same form.
 */
import { ConfigError } from '@webpeft/nn';
import type { QuantType } from '../codebooks.js';

/** What a bitsandbytes 4-bit `quantization_config` says. */
export interface Bnb4bitConfig {
  quantType: QuantType;
  doubleQuant: boolean;
  /** `bnb_4bit_compute_dtype` as torch names it (`float32`, `float16`, `bfloat16`). */
  computeDtype: 'float32' | 'float16' | 'bfloat16';
  /** `llm_int8_skip_modules`, or null (transformers then keeps the output head and tied weights). */
  skipModules: string[] | null;
}

const COMPUTE_DTYPES = ['float32', 'float16', 'bfloat16'] as const;

/**
 * Reads a bitsandbytes 4-bit `quantization_config`: a `ConfigError` naming `file` and the
 * field for another `quant_method`, 8-bit, a non-`uint8` storage, or a wrong type.
 */
export function readBnb4bitConfig(config: unknown, file: string): Bnb4bitConfig {
  const bad = (field: string, msg: string): never => {
    throw new ConfigError(`quantization_config: ${msg}`, file, `quantization_config${field ? `.${field}` : ''}`);
  };
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return bad('', `must be an object, got ${JSON.stringify(config)}`);
  const c = config as Record<string, unknown>;
  if (c.quant_method !== 'bitsandbytes') bad('quant_method', `quant_method ${JSON.stringify(c.quant_method)} is not supported (only bitsandbytes 4-bit checkpoints load)`);
  if (c.load_in_8bit === true) bad('load_in_8bit', 'bitsandbytes 8-bit (LLM.int8) weights are not supported; only 4-bit (load_in_4bit) checkpoints load');
  if (c.load_in_4bit !== true) bad('load_in_4bit', `load_in_4bit must be true, got ${JSON.stringify(c.load_in_4bit)}`);
  const quantType = c.bnb_4bit_quant_type ?? 'fp4';
  if (quantType !== 'nf4' && quantType !== 'fp4') bad('bnb_4bit_quant_type', `bnb_4bit_quant_type must be 'nf4' or 'fp4', got ${JSON.stringify(quantType)}`);
  const doubleQuant = c.bnb_4bit_use_double_quant ?? false;
  if (typeof doubleQuant !== 'boolean') bad('bnb_4bit_use_double_quant', `bnb_4bit_use_double_quant must be a boolean, got ${JSON.stringify(doubleQuant)}`);
  const computeDtype = c.bnb_4bit_compute_dtype ?? 'float32';
  if (!(COMPUTE_DTYPES as readonly unknown[]).includes(computeDtype)) bad('bnb_4bit_compute_dtype', `bnb_4bit_compute_dtype must be one of ${COMPUTE_DTYPES.join(', ')}, got ${JSON.stringify(computeDtype)}`);
  const storage = c.bnb_4bit_quant_storage ?? 'uint8';
  if (storage !== 'uint8') bad('bnb_4bit_quant_storage', `bnb_4bit_quant_storage ${JSON.stringify(storage)} is not supported (only 'uint8', the default)`);
  const skip = c.llm_int8_skip_modules ?? null;
  if (skip !== null && !(Array.isArray(skip) && skip.every((s) => typeof s === 'string'))) bad('llm_int8_skip_modules', `llm_int8_skip_modules must be null or a list of module names, got ${JSON.stringify(skip)}`);
  return { quantType: quantType as QuantType, doubleQuant: doubleQuant as boolean, computeDtype: computeDtype as Bnb4bitConfig['computeDtype'], skipModules: skip as string[] | null };
}

/**
 * The `quantization_config` of a 4-bit model, as transformers 5.18's
 * `BitsAndBytesConfig(load_in_4bit=True, ...).to_dict()` writes it (keys sorted).
 */
export function bnb4bitConfigJson(c: Bnb4bitConfig): Record<string, unknown> {
  return {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: c.computeDtype,
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: c.quantType,
    bnb_4bit_use_double_quant: c.doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: c.skipModules,
    llm_int8_threshold: 6.0,
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  };
}
