/**
 * A weights file that does not fit the module it is loaded into: missing, unexpected,
 * mis-shaped or wrongly typed tensors. Thrown before anything is copied or allocated,
 * listing every problem at once; `file` names the weights file.
 */
export class WeightsMismatchError extends Error {
  constructor(
    /** Who was loading (`loadAdapter`, `fromPretrained`, ...). */
    readonly op: string,
    /** The weights file (or checkpoint directory) that was read. */
    readonly file: string,
    /** One line per problem: `missing: <key>`, `unexpected: <key>`, `shape mismatch: ...`, `dtype: ...`. */
    readonly problems: readonly string[],
  ) {
    super(`${op}: ${problems.length} problem(s) in ${file}:\n  ${problems.join('\n  ')}`);
    this.name = 'WeightsMismatchError';
  }
}

/** What a weights file must hold for one key: a shape and a dtype kind. */
export interface ExpectedTensor {
  shape: readonly number[];
  /** `float` accepts any floating safetensors dtype (decoded to f32), `int` any integer one. */
  kind: 'float' | 'int' | 'bool';
}

/** Safetensors dtypes by the kind of tensor they may load into. */
const KINDS: Record<ExpectedTensor['kind'], readonly string[]> = {
  float: ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2'],
  int: ['I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8'],
  bool: ['BOOL'],
};

/**
 * Compares a file's tensors (dtype and shape from its header) with what a module
 * expects, returning one line per problem (empty when they fit). Keys in
 * `optional` may be absent from the file.
 * @example const problems = weightProblems(expected, parsed.tensors); // [] or ['missing: lm_head.weight', ...]
 */
export function weightProblems(
  expected: ReadonlyMap<string, ExpectedTensor>,
  file: ReadonlyMap<string, { dtype: string; shape: readonly number[] }>,
  optional: ReadonlySet<string> = new Set(),
): string[] {
  const problems: string[] = [];
  for (const key of expected.keys()) if (!file.has(key) && !optional.has(key)) problems.push(`missing: ${key}`);
  for (const key of file.keys()) if (!expected.has(key)) problems.push(`unexpected: ${key}`);
  for (const [key, want] of expected) {
    const got = file.get(key);
    if (!got) continue;
    if (got.shape.length !== want.shape.length || got.shape.some((d, i) => d !== want.shape[i])) {
      problems.push(`shape mismatch: ${key}: model [${want.shape.join(', ')}], file [${got.shape.join(', ')}]`);
    } else if (!KINDS[want.kind].includes(got.dtype)) {
      problems.push(`dtype: ${key}: the model holds a ${want.kind} tensor, the file ${got.dtype} (expected one of ${KINDS[want.kind].join(', ')})`);
    }
  }
  return problems;
}

/** The kind of tensor a dtype name (`f32`, `i32`, `bool`, ...) holds. */
export function dtypeKind(dtype: string): ExpectedTensor['kind'] {
  if (dtype === 'bool') return 'bool';
  return dtype.startsWith('f') ? 'float' : 'int';
}
