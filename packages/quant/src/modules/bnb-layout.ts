/**
 * Saving a 4-bit model as transformers saves a bitsandbytes 4-bit one: each `Linear4bit`
 * as its packed codes and state entries (`QuantState.toRecord`), and `config.json`'s
 * `quantization_config` as `BitsAndBytesConfig(...).to_dict()` writes it.
 */
import type { CausalLM, LinearLike, QuantizedLayout, RawTensor } from '@webpeft/nn';
import { Conv1D, Linear } from '@webpeft/nn';
import { type Bnb4bitConfig, bnb4bitConfigJson } from './bnb-config.js';
import { Linear4bit } from './linear-4bit.js';

/**
 * The layout for `savePretrained(model, dir, { config, quantized: bitsandbytesLayout() })`:
 * every {@link Linear4bit} is written in bitsandbytes' 4-bit keys (`<layer>.weight` U8
 * `[ceil(n/2), 1]`, `.weight.absmax`, `.weight.quant_map`, `.weight.nested_absmax`,
 * `.weight.nested_quant_map`, `.weight.quant_state.bitsandbytes__<type>`), other weights in
 * the save's `dtype`. All 4-bit layers must share one quant type, double quantization and
 * compute dtype (a `quantization_config` describes the whole model); else it throws. A
 * model loaded from a `bnb_4bit_compute_dtype: "bfloat16"` checkpoint (computing in f32
 * here) keeps that name.
 * `fromPretrained(dir, { quantize: quantizeOnLoad() })` and transformers read the folder back.
 */
export function bitsandbytesLayout(): QuantizedLayout {
  return {
    stores: (layer: LinearLike) => layer instanceof Linear4bit,
    async storedTensors(layer: LinearLike): Promise<Map<string, RawTensor>> {
      const q = layer as Linear4bit;
      const record = await q.quantState.toRecord(q.packedWeight, 'weight');
      const out = new Map<string, RawTensor>();
      for (const [key, a] of Object.entries(record)) out.set(key, { dtype: a.dtype, shape: a.shape, data: new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength) });
      return out;
    },
    quantizationConfig(model: CausalLM, layers: ReadonlyMap<string, LinearLike>, previous?: unknown): Record<string, unknown> {
      const qs = [...layers].map(([path, l]) => [path, l as Linear4bit] as const);
      const describe = ([path, q]: readonly [string, Linear4bit]) => `${path}: ${q.quantState.quantType}, ${q.quantState.nested ? 'double quant' : 'no double quant'}, compute ${q.computeDtype}`;
      const first = qs[0][1];
      const odd = qs.find(([, q]) => q.quantState.quantType !== first.quantState.quantType || (q.quantState.nested === null) !== (first.quantState.nested === null) || q.computeDtype !== first.computeDtype);
      if (odd) throw new Error(`savePretrained (bitsandbytes layout): one quantization_config cannot describe layers quantized differently (${describe(qs[0])}; ${describe(odd)})`);
      // transformers converts every linear layer but the head (and tied weights) unless told otherwise.
      const kept = model
        .namedModules()
        .filter(([path, m]) => path !== '' && isPlainLinear(m) && !layers.has(path))
        .map(([path]) => path);
      const skip = kept.length === 0 || (kept.length === 1 && kept[0] === 'lm_head') ? null : kept;
      return bnb4bitConfigJson({ quantType: first.quantState.quantType, doubleQuant: first.quantState.nested !== null, computeDtype: computeDtypeName(first.computeDtype, previous), skipModules: skip });
    },
  };
}

function isPlainLinear(m: unknown): boolean {
  return m instanceof Linear || m instanceof Conv1D;
}

/** The compute dtype name to write: the config's own where it computes as the layers do (bfloat16 runs in f32 here). */
function computeDtypeName(compute: 'f32' | 'f16', previous: unknown): Bnb4bitConfig['computeDtype'] {
  const name = compute === 'f16' ? 'float16' : 'float32';
  const before = (previous as { bnb_4bit_compute_dtype?: unknown } | null | undefined)?.bnb_4bit_compute_dtype;
  return compute === 'f32' && before === 'bfloat16' ? 'bfloat16' : name;
}
