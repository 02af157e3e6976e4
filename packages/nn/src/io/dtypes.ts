/**
 * Element types of the safetensors format, with their byte sizes and the order the
 * reference writer sorts them by.
 */

/**
 * A safetensors element type. The first ten are the common ones; the unsigned and
 * 8-bit float types are read too (HF checkpoints use them for quantized weights).
 */
export type SafetensorsDType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U8'
  | 'BOOL'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'F8_E5M2'
  | 'F8_E4M3';

/**
 * Every dtype in the order of the Rust `safetensors::Dtype` enum ("increasing
 * alignment"). The writer sorts tensors by this rank, descending, then by name, as
 * the reference implementation does, so our files are byte-identical to its files.
 */
export const SAFETENSORS_DTYPES: readonly SafetensorsDType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];

/** Bytes per element of each safetensors dtype. */
export const SAFETENSORS_ITEM_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** True when `name` is a dtype this package knows. */
export function isSafetensorsDType(name: unknown): name is SafetensorsDType {
  return typeof name === 'string' && Object.hasOwn(SAFETENSORS_ITEM_SIZE, name);
}

/** Rank of `dtype` in the reference writer's sort order (higher = written first). */
export function dtypeRank(dtype: SafetensorsDType): number {
  return SAFETENSORS_DTYPES.indexOf(dtype);
}
