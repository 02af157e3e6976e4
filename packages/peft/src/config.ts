import { ConfigError, showValue } from '@webpeft/nn';
import { AdapterJson } from './config-json.js';

/**
 * Fields every PEFT configuration has (PEFT's `PeftConfigMixin` / `PeftConfig`).
 * Configs are plain JSON-serialisable objects; each method's `resolveConfig` fills
 * defaults and validates, returning a complete config or throwing.
 */
export interface PeftConfig {
  /** The method, e.g. `'LORA'`, `'IA3'`, `'PROMPT_TUNING'`, or a user method's name. */
  peftType: string;
  /** PEFT's task type (`'CAUSAL_LM'`, ...); informational, saved in `adapter_config.json`. */
  taskType?: string | null;
  /** Where the base model came from (saved for PEFT's loaders). */
  baseModelNameOrPath?: string | null;
  /** Base model revision. */
  revision?: string | null;
  /** True when the adapter is loaded for inference only (its weights stay frozen). */
  inferenceMode?: boolean;
}

/** PEFT's `TaskType` values. */
export const TASK_TYPES: readonly string[] = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'];

/** The common fields with PEFT's defaults filled (types checked). */
export function resolveCommon<C extends PeftConfig>(c: C): C {
  for (const key of ['taskType', 'baseModelNameOrPath', 'revision'] as const) {
    const v = c[key];
    if (v !== undefined && v !== null && typeof v !== 'string') configError(c.peftType, `${key} must be a string or null, got ${showValue(v)}`, key);
  }
  if (typeof c.taskType === 'string' && !TASK_TYPES.includes(c.taskType)) configError(c.peftType, `taskType must be null or one of ${TASK_TYPES.join(', ')}, got ${showValue(c.taskType)}`, 'taskType');
  if (c.inferenceMode !== undefined && typeof c.inferenceMode !== 'boolean') configError(c.peftType, `inferenceMode must be true or false, got ${showValue(c.inferenceMode)}`, 'inferenceMode');
  return { ...c, taskType: c.taskType ?? null, baseModelNameOrPath: c.baseModelNameOrPath ?? null, revision: c.revision ?? null, inferenceMode: c.inferenceMode ?? false };
}

/** The common fields in `adapter_config.json` naming. */
export function commonToJson(c: PeftConfig): Record<string, unknown> {
  return {
    peft_type: c.peftType,
    task_type: c.taskType ?? null,
    base_model_name_or_path: c.baseModelNameOrPath ?? null,
    revision: c.revision ?? null,
    inference_mode: c.inferenceMode ?? false,
    auto_mapping: null,
  };
}

/** The common fields from `adapter_config.json` (types checked: a bad one throws a `ConfigError` naming it). */
export function commonFromJson(j: Record<string, unknown>): PeftConfig {
  if (typeof j.peft_type !== 'string' || j.peft_type === '') {
    throw new ConfigError(`'peft_type' must be the method's name (a string such as "LORA"), got ${showValue(j.peft_type)}`, undefined, 'peft_type');
  }
  const f = new AdapterJson(j, j.peft_type);
  const taskType = f.stringOrNull('task_type');
  if (taskType !== null && !TASK_TYPES.includes(taskType)) f.fail('task_type', `null or one of PEFT's task types (${TASK_TYPES.join(', ')})`);
  return {
    peftType: j.peft_type,
    taskType,
    baseModelNameOrPath: f.stringOrNull('base_model_name_or_path'),
    revision: f.stringOrNull('revision'),
    inferenceMode: f.bool('inference_mode', false),
  };
}

/** Throws a `ConfigError` naming the method and, when given, the field. */
export function configError(peftType: string, message: string, field?: string): never {
  throw new ConfigError(`${peftType} config: ${message}`, undefined, field);
}

/** `adapter_config.json` text as PEFT writes it: sorted keys (recursively), indent 2. */
export function configJsonText(json: Record<string, unknown>): string {
  return JSON.stringify(sortKeys(json), null, 2);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
