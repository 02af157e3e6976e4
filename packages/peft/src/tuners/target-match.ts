import { type Module, isLinearLike } from '@webpeft/nn';

/**
 * Target selection as PEFT's `check_target_module_exists`: a list entry matches a
 * module path exactly or as a dotted suffix; a single string is a full regex match;
 * `layersToTransform` keeps only layers whose index follows `layersPattern`
 * (or any `<name>.<index>.` segment when no pattern is given).
 */
export interface TargetSpec {
  targetModules: string[] | string;
  excludeModules?: string[] | string | null;
  layersToTransform?: number[] | number | null;
  layersPattern?: string[] | string | null;
}

/** PEFT's shorthand for "every linear layer except the output head". */
export const ALL_LINEAR = 'all-linear';

/** Default LoRA targets per `config.model_type` (PEFT's mapping for the common families). */
export const DEFAULT_LORA_TARGETS: Record<string, string[]> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  gemma: ['q_proj', 'v_proj'],
  phi: ['q_proj', 'v_proj', 'fc1', 'fc2'],
  opt: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
  gpt_neox: ['query_key_value'],
  bloom: ['query_key_value'],
  falcon: ['query_key_value'],
  t5: ['q', 'v'],
};

/** True when `path` is selected by `spec` (exclusions win). */
export function matchesTarget(spec: TargetSpec, path: string): boolean {
  const ex = spec.excludeModules;
  if (ex) {
    if (typeof ex === 'string' ? fullMatch(ex, path) : ex.includes(path) || ex.some((e) => path.endsWith(`.${e}`))) return false;
  }
  if (typeof spec.targetModules === 'string') return fullMatch(spec.targetModules, path);
  if (spec.targetModules.includes(path)) return true;
  if (!spec.targetModules.some((t) => path.endsWith(`.${t}`))) return false;
  const layers = spec.layersToTransform;
  if (layers === null || layers === undefined || (Array.isArray(layers) && layers.length === 0)) return true;
  const index = layerIndex(path, spec.layersPattern);
  if (index === null) return false;
  return Array.isArray(layers) ? layers.includes(index) : layers === index;
}

/** The layer index in `path` (`model.layers.3.self_attn.q_proj` -> 3), or null. */
export function layerIndex(path: string, layersPattern?: string[] | string | null): number | null {
  const patterns = layersPattern === null || layersPattern === undefined || layersPattern.length === 0 ? null : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  if (!patterns) {
    const m = /^.*\.[^.]*\.(\d+)\./.exec(path);
    return m ? Number(m[1]) : null;
  }
  for (const p of patterns) {
    const m = new RegExp(`^.*\\.${p}\\.(\\d+)\\.`).exec(path);
    if (m) return Number(m[1]);
  }
  return null;
}

/**
 * Expands `'all-linear'` as PEFT does: the last path component of every linear-like
 * module, without the output head (`lm_head`, or the module named by `outputHead`).
 */
export function allLinearTargets(model: Module, isAdapterLayer: (m: Module) => boolean, outputHead = 'lm_head'): string[] {
  const names = new Set<string>();
  for (const [path, m] of model.namedModules()) {
    if (!path || (!isLinearLike(m) && !isAdapterLayer(m))) continue;
    if (path.includes('.base_layer')) continue;
    names.add(path.slice(path.lastIndexOf('.') + 1));
  }
  names.delete(outputHead);
  return [...names];
}

/**
 * The value of a rank/alpha pattern for `path` (PEFT: first key `k` with
 * `path` matching `.*\.k$`), or `fallback`.
 */
export function patternValue(pattern: Record<string, number>, path: string, fallback: number): number {
  for (const [key, value] of Object.entries(pattern)) {
    if (new RegExp(`^.*\\.${key}$`).test(path) || path === key) return value;
  }
  return fallback;
}

/** The `model_type` of a model's config, when it has one. */
export function modelTypeOf(model: Module): string | undefined {
  const cfg = (model as unknown as { config?: { model_type?: unknown; modelType?: unknown } }).config;
  const t = cfg?.model_type ?? cfg?.modelType;
  return typeof t === 'string' ? t : undefined;
}

function fullMatch(pattern: string, s: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(s);
}
