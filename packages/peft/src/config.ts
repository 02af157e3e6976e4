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

/** The common fields with PEFT's defaults filled. */
export function resolveCommon<C extends PeftConfig>(c: C): C {
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

/** The common fields from `adapter_config.json`. */
export function commonFromJson(j: Record<string, unknown>): PeftConfig {
  return {
    peftType: String(j.peft_type),
    taskType: (j.task_type as string | null) ?? null,
    baseModelNameOrPath: (j.base_model_name_or_path as string | null) ?? null,
    revision: (j.revision as string | null) ?? null,
    inferenceMode: Boolean(j.inference_mode ?? false),
  };
}

/** Throws a config error naming the method and the field. */
export function configError(peftType: string, message: string): never {
  throw new Error(`${peftType} config: ${message}`);
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
