/**
 * Checkpoints in bitsandbytes' 4-bit layout (`tools/golden/bnb_4bit_layout.py`: transformers'
 * base checkpoints, its `BitsAndBytesConfig.to_dict()` and conversion rules, the codes of
 * an independent implementation of bitsandbytes' rules): ours load them to the logits of
 * transformers' float model holding the dequantized weights, save them back byte for byte,
 * and refuse broken ones with an error naming the file and the tensor, allocating nothing.
 */
import { type CausalLM, type RawTensor, ConfigError, WeightsMismatchError, fromPretrained, memoryTarget, openSource, parseSafetensors, savePretrained, serializeSafetensors } from '@webpeft/nn';
import { type BackendName, memory, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import golden from './fixtures/bnb-4bit-layout.json' with { type: 'json' };
import { Linear4bit, bitsandbytesLayout, dequantizeModel, quantizeOnLoad } from '../index.js';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

type Case = (typeof golden.cases)[number];

function b64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function b64F32(s: string): Float32Array {
  const b = b64Bytes(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function files(c: Case, weights?: Uint8Array, config?: string): Record<string, Uint8Array | string> {
  return { 'config.json': config ?? c.files['config.json'], 'model.safetensors': weights ?? b64Bytes(c.files['model.safetensors']) };
}

function edited(c: Case, edit: (t: Map<string, RawTensor>) => void): Uint8Array {
  const { tensors } = parseSafetensors(b64Bytes(c.files['model.safetensors']), c.name);
  const copy = new Map([...tensors].map(([k, v]) => [k, { ...v, data: v.data.slice() }]));
  edit(copy);
  return serializeSafetensors(copy, { format: 'pt' });
}

async function logitsOf(model: CausalLM, c: Case, backend: BackendName): Promise<Float32Array> {
  const ids = tensor(Int32Array.from(c.input_ids.flat()), [c.input_ids.length, c.input_ids[0].length], { dtype: 'i32', backend });
  const out = noGrad(() => model.forward({ inputIds: ids }).logits);
  const data = new Float32Array((await out.data()) as Float32Array);
  out.dispose();
  ids.dispose();
  return data;
}

const SAVE_DTYPE = { llama: 'bf16', gpt2: 'f32' } as const;

describe('bitsandbytes 4-bit checkpoints', () => {
  for (const c of golden.cases) {
    it(`${c.name}: loads to transformers' logits of the dequantized model and to our dequantized model's`, async () => {
      for (const backend of backendsUnderTest()) {
        const { model } = await fromPretrained(openSource(files(c)), { backend, tokenizer: false, quantize: quantizeOnLoad() });
        expect(model.namedModules().filter(([, m]) => m instanceof Linear4bit).map(([p]) => p)).toEqual(c.layers);
        const ours = await logitsOf(model, c, backend);
        expectClose(ours, b64F32(c.logits), { atol: 1e-4, rtol: 0, label: `${c.name} ${backend} vs transformers` });
        dequantizeModel(model);
        expectClose(ours, await logitsOf(model, c, backend), { atol: 1e-5, rtol: 1e-5, label: `${c.name} ${backend} vs our dequantized model` });
        model.dispose();
      }
    });

    it(`${c.name}: savePretrained in the bitsandbytes layout writes the golden weights byte for byte and its config`, async () => {
      for (const backend of backendsUnderTest()) {
        const { model, rawConfig } = await fromPretrained(openSource(files(c)), { backend, tokenizer: false, quantize: quantizeOnLoad() });
        const target = memoryTarget();
        await savePretrained(model, target, { config: rawConfig, dtype: SAVE_DTYPE[c.base as keyof typeof SAVE_DTYPE], quantized: bitsandbytesLayout() });
        const weights = target.files.get('model.safetensors')!;
        const want = b64Bytes(c.files['model.safetensors']);
        const ours = parseSafetensors(weights, 'ours').tensors;
        const theirs = parseSafetensors(want, 'golden').tensors;
        expect([...ours].map(([k, t]) => [k, t.dtype, t.shape]).sort()).toEqual([...theirs].map(([k, t]) => [k, t.dtype, t.shape]).sort());
        expect(sameBytes(weights, want), `${c.name} ${backend}: model.safetensors bytes`).toBe(true);
        expect(JSON.parse(new TextDecoder().decode(target.files.get('config.json')))).toEqual(JSON.parse(c.files['config.json']));
        // Without the layout the same model is written dequantized, with no quantization_config.
        const plain = memoryTarget();
        await savePretrained(model, plain, { config: rawConfig });
        expect(JSON.parse(new TextDecoder().decode(plain.files.get('config.json')))).not.toHaveProperty('quantization_config');
        expect(parseSafetensors(plain.files.get('model.safetensors')!, 'plain').tensors.get(`${c.layers[0]}.weight`)?.dtype).toBe('F32');
        model.dispose();
      }
    });
  }

  it('a model quantized on load saves in the layout and loads back with the same codes', async () => {
    const c = golden.cases[0];
    for (const backend of backendsUnderTest()) {
      const { model, rawConfig } = await fromPretrained(openSource(files(c)), { backend, tokenizer: false, quantize: quantizeOnLoad() });
      const target = memoryTarget();
      await savePretrained(model, target, { config: rawConfig, dtype: 'bf16', quantized: bitsandbytesLayout() });
      const again = (await fromPretrained(openSource(Object.fromEntries(target.files)), { backend, tokenizer: false, quantize: quantizeOnLoad() })).model;
      expect(Array.from(await logitsOf(again, c, backend))).toEqual(Array.from(await logitsOf(model, c, backend)));
      model.dispose();
      again.dispose();
    }
  });
});

const LLAMA = golden.cases[0];
const Q = 'model.layers.0.self_attn.q_proj.weight';
const config = (patch: Record<string, unknown>) => {
  const cfg = JSON.parse(LLAMA.files['config.json']) as { quantization_config: Record<string, unknown> };
  return JSON.stringify({ ...cfg, quantization_config: { ...cfg.quantization_config, ...patch } });
};

const BROKEN: { label: string; files: Record<string, Uint8Array | string>; quantize?: boolean; type: abstract new (...a: never[]) => Error; error: RegExp }[] = [
  { label: 'missing quant_state', files: files(LLAMA, edited(LLAMA, (t) => t.delete(`${Q}.quant_state.bitsandbytes__nf4`))), type: WeightsMismatchError, error: /in memory:[\s\S]*model\.layers\.0\.self_attn\.q_proj: expected one 'weight\.quant_state\.bitsandbytes__<nf4\|fp4>' entry, found 0/ },
  { label: 'missing absmax', files: files(LLAMA, edited(LLAMA, (t) => t.delete(`${Q}.absmax`))), type: WeightsMismatchError, error: /model\.layers\.0\.self_attn\.q_proj: missing 'weight\.absmax'/ },
  { label: 'missing nested absmax', files: files(LLAMA, edited(LLAMA, (t) => t.delete(`${Q}.nested_absmax`))), type: WeightsMismatchError, error: /q_proj: missing 'weight\.nested_absmax'/ },
  { label: 'a packed weight of the wrong size', files: files(LLAMA, edited(LLAMA, (t) => { const r = t.get(Q)!; t.set(Q, { ...r, shape: [r.shape[0] - 1, 1], data: r.data.subarray(1) }); })), type: WeightsMismatchError, error: /q_proj: 'weight' has 511 bytes, expected 512 for shape \[32, 32\]/ },
  { label: 'a layer stored in full precision where 4 bits are expected', files: files(LLAMA, edited(LLAMA, (t) => { for (const k of [...t.keys()]) if (k.startsWith(`${Q}.`)) t.delete(k); t.set(Q, { dtype: 'F32', shape: [32, 32], data: new Uint8Array(4096) }); })), type: WeightsMismatchError, error: /q_proj: 'weight' is stored in full precision \(F32 \[32, 32\]\), but quantization_config says this layer is 4-bit/ },
  { label: 'an 8-bit checkpoint', files: files(LLAMA, undefined, config({ load_in_8bit: true, load_in_4bit: false })), type: ConfigError, error: /memory\/config\.json: quantization_config: bitsandbytes 8-bit \(LLM\.int8\) weights are not supported/ },
  { label: 'another quant_method', files: files(LLAMA, undefined, config({ quant_method: 'gptq' })), type: ConfigError, error: /memory\/config\.json: quantization_config: quant_method "gptq" is not supported/ },
  { label: 'a stored checkpoint loaded without a quantizer', files: files(LLAMA), quantize: false, type: ConfigError, error: /memory\/config\.json: 'quantization_config' \(quant_method "bitsandbytes"\) says the weights are stored quantized; load it with a quantizer/ },
];

describe('broken bitsandbytes checkpoints fail naming the file and tensor, allocating nothing', () => {
  for (const b of BROKEN) {
    it(b.label, async () => {
      for (const backend of backendsUnderTest()) {
        const live = liveCounts(backend);
        const peak = memory(backend).peakBytes;
        const error = await fromPretrained(openSource(b.files), { backend, tokenizer: false, ...(b.quantize === false ? {} : { quantize: quantizeOnLoad() }) }).catch((e: unknown) => e);
        expect(error, String(error)).toBeInstanceOf(b.type);
        expect((error as Error).message).toMatch(b.error);
        expect(liveCounts(backend), backend).toEqual(live);
        expect(memory(backend).peakBytes, backend).toBe(peak);
      }
    });
  }

  it('options that contradict the stored config are refused', async () => {
    await expect(fromPretrained(openSource(files(LLAMA)), { backend: 'cpu', tokenizer: false, quantize: quantizeOnLoad({ quantType: 'fp4' }) })).rejects.toThrow(
      /quantizeOnLoad: quantType "fp4" was asked for, but memory\/config\.json stores "nf4" weights/,
    );
  });
});
