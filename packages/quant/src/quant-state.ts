/**
 * The quantization state of a 4-bit weight, serialised in the layout of bitsandbytes'
 * `QuantState.as_dict(packed=True)` / `from_dict` (the keys transformers writes into
 * safetensors checkpoints).
 */
import { type BackendName, type Tensor, reshape, tensor, withMemoryTag } from '@webpeft/tensor';
import { type QuantType, codeFor } from './codebooks.js';
import { codeTensor } from './code-tensors.js';
import { NESTED_BLOCKSIZE, type NestedAbsmax, checkBlocksize4bit, restoreAbsmax } from './blockwise.js';
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
   * the packed weight (u32 words) and its state on `backend`. Missing or malformed
   * entries throw naming the key.
   */
  static fromRecord(record: Record<string, RecordArray>, prefix = 'weight', backend: BackendName = 'webgpu'): { packed: Tensor; state: QuantState } {
    const get = (key: string, dtype: RecordDType): RecordArray => {
      const a = record[key];
      if (!a) throw new Error(`QuantState.fromRecord: missing '${key}' (keys: ${Object.keys(record).join(', ')})`);
      if (a.dtype !== dtype) throw new Error(`QuantState.fromRecord: '${key}' has dtype ${a.dtype}, expected ${dtype}`);
      return a;
    };
    const qsKeys = Object.keys(record).filter((k) => k.startsWith(`${prefix}.quant_state.bitsandbytes__`));
    if (qsKeys.length !== 1) throw new Error(`QuantState.fromRecord: expected one '${prefix}.quant_state.bitsandbytes__<nf4|fp4>' entry, found ${qsKeys.length}`);
    const meta = JSON.parse(new TextDecoder().decode(asBytes(get(qsKeys[0], 'U8').data))) as Record<string, unknown>;
    const quantType = meta.quant_type as QuantType;
    codeFor(quantType);
    const shape = meta.shape as number[];
    const blocksize = meta.blocksize as number;
    const n = shape.reduce((a, b) => a * b, 1);
    const weight = get(prefix, 'U8');
    if (weight.data.length !== Math.ceil(n / 2)) {
      throw new Error(`QuantState.fromRecord: '${prefix}' has ${weight.data.length} bytes, expected ${Math.ceil(n / 2)} for shape [${shape.join(', ')}]`);
    }
    const f32 = (key: string) => new Float32Array(get(key, 'F32').data as Float32Array);
    return withMemoryTag('quant', () => {
      const packed = bytesTensor(asBytes(weight.data), backend);
      const code = codeTensor(f32(`${prefix}.quant_map`), backend);
      const nb = Math.ceil(n / blocksize);
      let absmax: Tensor | null = null;
      let nested: NestedAbsmax | null = null;
      if (`${prefix}.nested_absmax` in record) {
        const q = asBytes(get(`${prefix}.absmax`, 'U8').data);
        if (q.length !== nb) throw new Error(`QuantState.fromRecord: '${prefix}.absmax' has ${q.length} codes, expected ${nb}`);
        const dyn = codeTensor(f32(`${prefix}.nested_quant_map`), backend);
        const a2 = f32(`${prefix}.nested_absmax`);
        nested = {
          qabsmax: bytesTensor(q, backend),
          absmax2: tensor(a2, [a2.length], { backend }),
          offset: tensor(new Float32Array([Number(meta.nested_offset)]), [1], { backend }),
          code: dyn.tensor,
          codeShared: dyn.shared,
          n: nb,
          blocksize: (meta.nested_blocksize as number | undefined) ?? NESTED_BLOCKSIZE,
        };
      } else {
        const a = f32(`${prefix}.absmax`);
        if (a.length !== nb) throw new Error(`QuantState.fromRecord: '${prefix}.absmax' has ${a.length} values, expected ${nb}`);
        absmax = tensor(a, [nb], { backend });
      }
      const state = new QuantState({ quantType, blocksize, dtype: String(meta.dtype), shape, code: code.tensor, codeShared: code.shared, absmax, nested });
      return { packed, state };
    });
  }
}

function asBytes(d: RecordArray['data']): Uint8Array {
  return d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

