/**
 * Helpers for the committed fuzz corpora (`tools/golden/config_fuzz.py`,
 * `tools/golden/safetensors_fuzz.py`): each case is a mutation of a file written by the
 * real library, with that library's verdict; tests apply the same mutation and compare.
 */

/** One mutated config file with the reference library's verdict. */
export interface FuzzCase {
  /** Which base file was mutated. */
  base: string;
  label: string;
  /** The mutated top-level key a config error must name, when one is to blame. */
  field: string | null;
  verdict: 'accepted' | 'rejected';
  /** For accepted cases: whether the reference's logits were all finite. */
  finite?: boolean;
  /** The reference's exception, for rejected cases. */
  error?: string;
  /** The whole mutated text (for text that `set`/`drop` cannot make). */
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

/** `loraAlpha` -> `lora_alpha`, to compare a JS-level field name with a file's key. */
export function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Null when `error` is a clear rejection: an instance of one of `types`, whose message
 * names one of `files`, and which (when it has a `field` and the case blames one)
 * names that field or a sub-field of it. Otherwise a description of what is unclear.
 */
export function unclearError(error: unknown, types: readonly (abstract new (...args: never[]) => Error)[], files: readonly string[], field: string | null): string | null {
  const e = error as Error & { field?: string };
  if (!types.some((t) => error instanceof t)) return `untyped ${e?.name}: ${e?.message}`;
  if (!files.some((f) => e.message.includes(f))) return `does not name ${files.join(' or ')}: ${e.message}`;
  if (field !== null && 'field' in e) {
    const named = e.field === undefined ? '' : snakeCase(e.field);
    if (named !== field && !named.startsWith(`${field}.`)) return `names field '${e.field}', not '${field}': ${e.message}`;
  }
  return null;
}
