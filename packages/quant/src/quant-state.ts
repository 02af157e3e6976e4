/**
 * The quantization state of a 4-bit weight, serialised in the layout of bitsandbytes'
 * `QuantState.as_dict(packed=True)` / `from_dict` (the keys transformers writes into
 * safetensors checkpoints).
 */
import { type BackendName, type Tensor, reshape, tensor, withMemoryTag } from '@webpeft/tensor';
import type { QuantType } from './codebooks.js';
import { codeTensor } from './code-tensors.js';
import { BLOCKSIZES_4BIT, NESTED_BLOCKSIZE, type NestedAbsmax, checkBlocksize4bit, restoreAbsmax } from './blockwise.js';
import { bytesTensor, tensorBytes } from './host-bytes.js';
import { pythonJson } from './python-json.js';

/** safetensors dtype names used in a serialised state. */
export type RecordDType = 'U8' | 'F32' | 'F16' | 'BF16' | 'I32';

/** One named array of a serialised state (the shape a safetensors writer needs). */
export interface RecordArray {
  dtype: RecordDType;
  shape: number[];
  data: Uint8Array | Float32Array | Int32Array | Uint16Array;
}

/** Fields of a {@link QuantState}. */
export interface QuantStateInit {
  quantType: QuantType;
  blocksize: number;
  /** torch dtype name of the original weight ('float32', 'float16', 'bfloat16'). */
  dtype: string;
  /** Shape of the original weight (`[out, in]` for a linear layer). */
  shape: number[];
  /** f32 `[16]` code table. */
  code: Tensor;
  codeShared: boolean;
  /** f32 `[nBlocks]`, when not double-quantized. */
  absmax: Tensor | null;
  /** The double-quantized absmax, when `compress_statistics`. */
  nested: NestedAbsmax | null;
}

/**
 * Everything needed to dequantize a packed 4-bit weight: the code table, blocksize,
 * per-block absmax (or its double quantization), the original dtype and shape. Owns
 * its tensors (not the shared code tables); `dispose()` frees them.
 */
export class QuantState {
  readonly quantType: QuantType;
  readonly blocksize: number;
  readonly dtype: string;
  readonly shape: number[];
  readonly code: Tensor;
  readonly absmax: Tensor | null;
  readonly nested: NestedAbsmax | null;
  private readonly codeShared: boolean;

  constructor(init: QuantStateInit) {
    checkBlocksize4bit('QuantState', init.blocksize);
    if ((init.absmax === null) === (init.nested === null)) throw new Error('QuantState: exactly one of absmax and nested must be given');
    this.quantType = init.quantType;
    this.blocksize = init.blocksize;
    this.dtype = init.dtype;
    this.shape = [...init.shape];
    this.code = init.code;
    this.codeShared = init.codeShared;
    this.absmax = init.absmax;
    this.nested = init.nested;
  }

  /** Number of quantized elements (the product of `shape`). */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Number of first-level blocks. */
  get numBlocks(): number {
    return Math.ceil(this.numel / this.blocksize);
  }

  /** Per-block absmax as f32 `[numBlocks]`: a new tensor (restored from the nested state, or a copy handle). */
  absmaxValues(): Tensor {
    return this.nested ? restoreAbsmax(this.nested) : reshape(this.absmax!, [this.numBlocks]);
  }

  /** Tensors of this state (for moving, accounting or disposal), excluding shared code tables. */
  ownedTensors(): Tensor[] {
    const ts: Tensor[] = this.codeShared ? [] : [this.code];
    if (this.absmax) ts.push(this.absmax);
    if (this.nested) {
      ts.push(this.nested.qabsmax, this.nested.absmax2, this.nested.offset);
      if (!this.nested.codeShared) ts.push(this.nested.code);
    }
    return ts;
  }

  /** Frees the tensors this state owns. */
  dispose(): void {
    for (const t of this.ownedTensors()) t.dispose();
  }

  /**
   * The flat record bitsandbytes and transformers save for a 4-bit weight, keys
   * prefixed by `prefix` ('weight'): `weight` (U8 `[ceil(n/2), 1]`), `weight.absmax`
   * (F32 `[nBlocks]`, or U8 codes when nested), `weight.quant_map` (F32 `[16]`),
   * `weight.nested_absmax` (F32), `weight.nested_quant_map` (F32 `[256]`) and
   * `weight.quant_state.bitsandbytes__<type>` (U8 JSON, Python `json.dumps` format).
   */
  async toRecord(packed: Tensor, prefix = 'weight'): Promise<Record<string, RecordArray>> {
    const n = this.numel;
    const nBytes = Math.ceil(n / 2);
    const f32 = async (t: Tensor) => new Float32Array((await t.data()) as Float32Array);
    const rec: Record<string, RecordArray> = {};
    rec[prefix] = { dtype: 'U8', shape: [nBytes, 1], data: await tensorBytes(packed, nBytes) };
    const meta: Record<string, unknown> = { quant_type: this.quantType, blocksize: this.blocksize, dtype: this.dtype, shape: this.shape };
    if (this.nested) {
      const nb = this.nested.n;
      rec[`${prefix}.absmax`] = { dtype: 'U8', shape: [nb], data: await tensorBytes(this.nested.qabsmax, nb) };
    } else {
      rec[`${prefix}.absmax`] = { dtype: 'F32', shape: [this.numBlocks], data: await f32(this.absmax!) };
    }
    rec[`${prefix}.quant_map`] = { dtype: 'F32', shape: [16], data: await f32(this.code) };
    if (this.nested) {
      const a2 = await f32(this.nested.absmax2);
      rec[`${prefix}.nested_absmax`] = { dtype: 'F32', shape: [a2.length], data: a2 };
      rec[`${prefix}.nested_quant_map`] = { dtype: 'F32', shape: [256], data: await f32(this.nested.code) };
      meta.nested_blocksize = this.nested.blocksize;
      meta.nested_dtype = 'float32';
      meta.nested_offset = { pyFloat: (await f32(this.nested.offset))[0] };
    }
    const json = new TextEncoder().encode(pythonJson(meta));
    rec[`${prefix}.quant_state.bitsandbytes__${this.quantType}`] = { dtype: 'U8', shape: [json.length], data: json };
    return rec;
  }

  /**
   * Reads a record written by bitsandbytes/transformers (or {@link toRecord}): returns
   * the packed weight (u32 words) and its state on `backend`. Every entry is checked on
   * the host first (see {@link QuantState.checkRecord}), so a bad record allocates nothing.
   */
  static fromRecord(record: Record<string, RecordArray>, prefix = 'weight', backend: BackendName = 'webgpu'): { packed: Tensor; state: QuantState } {
    const r = readRecord(record, prefix);
    return withMemoryTag('quant', () => {
      const owned: Tensor[] = [];
      const own = <T extends Tensor>(t: T): T => (owned.push(t), t);
      try {
        const packed = own(bytesTensor(r.weight, backend));
        const code = codeTensor(r.quantMap, backend);
        if (!code.shared) own(code.tensor);
        let absmax: Tensor | null = null;
        let nested: NestedAbsmax | null = null;
        if (r.nested) {
          const dyn = codeTensor(r.nested.quantMap, backend);
          if (!dyn.shared) own(dyn.tensor);
          nested = {
            qabsmax: own(bytesTensor(r.nested.qabsmax, backend)),
            absmax2: own(tensor(r.nested.absmax2, [r.nested.absmax2.length], { backend })),
            offset: own(tensor(new Float32Array([r.nested.offset]), [1], { backend })),
            code: dyn.tensor,
            codeShared: dyn.shared,
            n: r.nested.qabsmax.length,
            blocksize: r.nested.blocksize,
          };
        } else {
          absmax = own(tensor(r.absmax!, [r.absmax!.length], { backend }));
        }
        const state = new QuantState({ quantType: r.quantType, blocksize: r.blocksize, dtype: r.dtype, shape: r.shape, code: code.tensor, codeShared: code.shared, absmax, nested });
        return { packed, state };
      } catch (e) {
        for (const t of owned) t.dispose();
        throw e;
      }
    });
  }

  /**
   * The problems of a serialised state (one line each, empty when it reads): missing
   * keys, wrong dtypes or sizes, bad `quant_state` JSON, and, with `shape`, a weight of
   * another shape. Allocates nothing.
   */
  static checkRecord(record: Record<string, RecordArray>, prefix = 'weight', shape?: readonly number[]): string[] {
    try {
      const r = readRecord(record, prefix);
      if (shape && (r.shape.length !== shape.length || r.shape.some((d, i) => d !== shape[i]))) {
        return [`'${prefix}' holds a quantized [${r.shape.join(', ')}] weight, the layer is [${shape.join(', ')}]`];
      }
      return [];
    } catch (e) {
      return [(e as Error).message.replace(/^QuantState\.fromRecord: /, '')];
    }
  }
}

/** A serialised state read and checked on the host. */
interface HostRecord {
  quantType: QuantType;
  blocksize: number;
  dtype: string;
  shape: number[];
  weight: Uint8Array;
  quantMap: Float32Array;
  absmax: Float32Array | null;
  nested: { qabsmax: Uint8Array; absmax2: Float32Array; quantMap: Float32Array; offset: number; blocksize: number } | null;
}

/** Reads and checks every entry of a serialised state; throws naming the first bad key. */
function readRecord(record: Record<string, RecordArray>, prefix: string): HostRecord {
  const fail = (msg: string): never => {
    throw new Error(`QuantState.fromRecord: ${msg}`);
  };
  const get = (key: string, dtype: RecordDType): RecordArray => {
    const a = record[key];
    if (!a) return fail(`missing '${key}' (keys: ${Object.keys(record).join(', ')})`);
    if (a.dtype !== dtype) fail(`'${key}' has dtype ${a.dtype}, expected ${dtype}`);
    return a;
  };
  const qsKeys = Object.keys(record).filter((k) => k.startsWith(`${prefix}.quant_state.bitsandbytes__`));
  if (qsKeys.length !== 1) fail(`expected one '${prefix}.quant_state.bitsandbytes__<nf4|fp4>' entry, found ${qsKeys.length}${qsKeys.length > 1 ? ` (${qsKeys.join(', ')})` : ''}`);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(asBytes(get(qsKeys[0], 'U8').data))) as Record<string, unknown>;
  } catch (e) {
    return fail(`'${qsKeys[0]}' is not UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) fail(`'${qsKeys[0]}' is not a JSON object`);
  const quantType = meta.quant_type;
  if (quantType !== 'nf4' && quantType !== 'fp4') fail(`'${qsKeys[0]}': quant_type ${JSON.stringify(quantType)} is not 'nf4' or 'fp4'`);
  if (qsKeys[0] !== `${prefix}.quant_state.bitsandbytes__${String(quantType)}`) fail(`'${qsKeys[0]}' holds quant_type '${String(quantType)}'`);
  const shape = meta.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) > 0)) fail(`'${qsKeys[0]}': shape ${JSON.stringify(shape)} is not a list of positive integers`);
  const blocksize = meta.blocksize;
  if (typeof blocksize !== 'number' || !BLOCKSIZES_4BIT.includes(blocksize)) fail(`'${qsKeys[0]}': blocksize ${JSON.stringify(blocksize)} is not one of ${BLOCKSIZES_4BIT.join(', ')}`);
  if (meta.dtype !== undefined && typeof meta.dtype !== 'string') fail(`'${qsKeys[0]}': dtype ${JSON.stringify(meta.dtype)} is not a torch dtype name`);
  const n = (shape as number[]).reduce((a, b) => a * b, 1);
  const nb = Math.ceil(n / (blocksize as number));
  const weight = asBytes(get(prefix, 'U8').data);
  if (weight.length !== Math.ceil(n / 2)) fail(`'${prefix}' has ${weight.length} bytes, expected ${Math.ceil(n / 2)} for shape [${(shape as number[]).join(', ')}]`);
  const f32 = (key: string, length: number) => {
    const a = get(key, 'F32');
    const values = toF32(a.data);
    if (values.length !== length) fail(`'${key}' has ${values.length} values, expected ${length}`);
    return values;
  };
  const quantMap = f32(`${prefix}.quant_map`, 16);
  const base = { quantType: quantType as QuantType, blocksize: blocksize as number, dtype: typeof meta.dtype === 'string' ? meta.dtype : 'float32', shape: [...(shape as number[])], weight, quantMap };
  if (!(`${prefix}.nested_absmax` in record) && !(`${prefix}.nested_quant_map` in record) && meta.nested_offset === undefined) {
    return { ...base, absmax: f32(`${prefix}.absmax`, nb), nested: null };
  }
  const qabsmax = asBytes(get(`${prefix}.absmax`, 'U8').data);
  if (qabsmax.length !== nb) fail(`'${prefix}.absmax' has ${qabsmax.length} codes, expected ${nb}`);
  const nestedBlocksize = meta.nested_blocksize ?? NESTED_BLOCKSIZE;
  if (typeof nestedBlocksize !== 'number' || !Number.isSafeInteger(nestedBlocksize) || nestedBlocksize < 1) fail(`'${qsKeys[0]}': nested_blocksize ${JSON.stringify(nestedBlocksize)} is not a positive integer`);
  const offset = meta.nested_offset;
  if (typeof offset !== 'number' || !Number.isFinite(offset)) fail(`'${qsKeys[0]}': nested_offset ${JSON.stringify(offset)} is not a finite number`);
  const absmax2 = f32(`${prefix}.nested_absmax`, Math.ceil(nb / (nestedBlocksize as number)));
  const nestedMap = f32(`${prefix}.nested_quant_map`, 256);
  return { ...base, absmax: null, nested: { qabsmax, absmax2, quantMap: nestedMap, offset: offset as number, blocksize: nestedBlocksize as number } };
}

function toF32(d: RecordArray['data']): Float32Array {
  if (d instanceof Float32Array) return new Float32Array(d);
  const bytes = asBytes(d);
  if (bytes.length % 4 !== 0) return new Float32Array(0);
  return new Float32Array(bytes.slice().buffer);
}

function asBytes(d: RecordArray['data']): Uint8Array {
  return d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

