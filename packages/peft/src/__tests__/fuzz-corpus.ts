import { ConfigError, SafetensorsError, WeightsMismatchError } from '@webpeft/nn';

/** One mutated file of a fuzz corpus, with the reference library's verdict (see `tools/golden/config_fuzz.py`). */
export interface FuzzCase {
  base: string;
  label: string;
  /** The mutated top-level key a config error must name, when one is to blame. */
  field: string | null;
  verdict: 'accepted' | 'rejected';
  /** For accepted cases: whether the reference's logits were all finite. */
  finite?: boolean;
  error?: string;
  text?: string;
  set?: Record<string, unknown>;
  drop?: string[];
}

/** The mutated file text: the recorded text, or the base JSON with keys dropped and set (as the generator does). */
export function mutatedText(baseText: string, c: FuzzCase): string {
  if (c.text !== undefined) return c.text;
  const j = JSON.parse(baseText) as Record<string, unknown>;
  for (const k of c.drop ?? []) delete j[k];
  Object.assign(j, c.set ?? {});
  return JSON.stringify(j, null, 2);
}

/** `loraAlpha` -> `lora_alpha`, to compare a JS-level field with a file's key. */
export function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Why our verdict on `error` is a clear one: a typed error naming the file (and, for a
 * config error with a field to blame, that field). Returns a problem description, or
 * null when the error is clear.
 */
export function unclearError(error: unknown, files: readonly string[], field: string | null): string | null {
  if (!(error instanceof ConfigError || error instanceof WeightsMismatchError || error instanceof SafetensorsError)) {
    return `untyped ${(error as Error)?.name}: ${(error as Error)?.message}`;
  }
  if (!files.some((f) => error.message.includes(f))) return `does not name ${files.join(' or ')}: ${error.message}`;
  if (error instanceof ConfigError && field !== null) {
    const named = error.field === undefined ? '' : snakeCase(error.field);
    if (named !== field && !named.startsWith(`${field}.`)) return `names field '${error.field}', not '${field}': ${error.message}`;
  }
  return null;
}
