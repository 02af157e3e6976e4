/** A parsed `config.json`: plain JSON values by key. */
export type RawConfig = Record<string, unknown>;

/** Reads a positive integer field, or throws naming the model type and key. */
export function requireInt(raw: RawConfig, key: string, modelType: string): number {
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new Error(`${modelType} config: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Reads an optional number field (null or absent gives `fallback`). */
export function optNumber(raw: RawConfig, key: string, fallback: number): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number') throw new Error(`config: '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Reads an optional boolean field. */
export function optBool(raw: RawConfig, key: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new Error(`config: '${key}' must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Reads an optional string field. */
export function optString(raw: RawConfig, key: string, fallback: string): string {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string') throw new Error(`config: '${key}' must be a string, got ${JSON.stringify(v)}`);
  return v;
}
