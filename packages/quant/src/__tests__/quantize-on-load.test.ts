/**
 * Quantize-on-load (`fromPretrained(dir, { quantize: quantizeOnLoad(...) })`) against the
 * two-step path it replaces (a full f32 load, then `quantizeModel`): the same layers,
 * bit-identical packed codes and constants, the same logits; the device never holds more
 * than the final model plus its largest weight; and a load that fails half way frees
 * everything. The checkpoints are transformers' own (packages/nn's model fixtures: GPT-2
 * f32 with Conv1D and a tied head, LLaMA bf16 untied, Qwen2 bf16 with biases and a tied head).
 */
import { type CausalLM, type RawTensor, fromPretrained, openSource, parseSafetensors, serializeSafetensors } from '@webpeft/nn';
import { type BackendName, getBackend, memory, noGrad, resetPeakMemory, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import gpt2 from '../../../nn/src/__tests__/fixtures/models/gpt2.json' with { type: 'json' };
import llama from '../../../nn/src/__tests__/fixtures/models/llama.json' with { type: 'json' };
import qwen2 from '../../../nn/src/__tests__/fixtures/models/qwen2.json' with { type: 'json' };
import { Linear4bit, quantizeModel, quantizeOnLoad } from '../index.js';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

const FIXTURES = { gpt2, llama, qwen2 } as const;
type Name = keyof typeof FIXTURES;

function b64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function files(name: Name): Record<string, Uint8Array | string> {
  const f = FIXTURES[name].files;
  return { 'config.json': f['config.json'], 'model.safetensors': b64Bytes(f['model.safetensors']) };
}

/** The same checkpoint as two shards and an index (transformers' sharded layout). */
function sharded(name: Name, edit?: (second: Map<string, RawTensor>) => void): Record<string, Uint8Array | string> {
  const { tensors } = parseSafetensors(files(name)['model.safetensors'] as Uint8Array, name);
  const keys = [...tensors.keys()].sort();
  const half = Math.ceil(keys.length / 2);
  const shards = [new Map(keys.slice(0, half).map((k) => [k, tensors.get(k)!])), new Map(keys.slice(half).map((k) => [k, { ...tensors.get(k)!, data: tensors.get(k)!.data.slice() }]))];
  edit?.(shards[1]);
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  shards.forEach((s, i) => s.forEach((_, k) => (weightMap[k] = names[i])));
  return {
    'config.json': FIXTURES[name].files['config.json'],
    'model.safetensors.index.json': JSON.stringify({ metadata: {}, weight_map: weightMap }),
    [names[0]]: serializeSafetensors(shards[0], { format: 'pt' }),
    [names[1]]: serializeSafetensors(shards[1], { format: 'pt' }),
  };
}

/** Bytes of the largest weight of a checkpoint once decoded to `bytesPerElement`. */
function largestWeightBytes(name: Name, bytesPerElement: number): number {
  const { tensors } = parseSafetensors(files(name)['model.safetensors'] as Uint8Array, name);
  return Math.max(...[...tensors.values()].map((t) => t.shape.reduce((a, b) => a * b, 1) * bytesPerElement));
}

const IDS = [[3, 17, 42, 5, 9, 28, 11, 0]];

async function logits(model: CausalLM, backend: BackendName): Promise<Float32Array> {
  const ids = tensor(Int32Array.from(IDS.flat()), [1, IDS[0].length], { dtype: 'i32', backend });
  const out = noGrad(() => model.forward({ inputIds: ids }).logits);
  const data = (await out.data()) as Float32Array;
  out.dispose();
  ids.dispose();
  return data;
}

/** Every 4-bit layer's serialised record (packed bytes, absmax or nested constants, JSON state), by path. */
async function records(model: CausalLM): Promise<Map<string, Record<string, { dtype: string; shape: number[]; data: number[] }>>> {
  const out = new Map<string, Record<string, { dtype: string; shape: number[]; data: number[] }>>();
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear4bit)) continue;
    const rec = await m.quantState.toRecord(m.packedWeight);
    out.set(path, Object.fromEntries(Object.entries(rec).map(([k, a]) => [k, { dtype: a.dtype, shape: a.shape, data: Array.from(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength)) }])));
  }
  return out;
}

async function fullPrecisionState(model: CausalLM): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [k, t] of model.stateDict()) if (t.dtype !== 'u32') out.set(k, Array.from(await t.data()));
  return out;
}

describe('quantizeOnLoad equals a full load followed by quantizeModel', () => {
  for (const name of Object.keys(FIXTURES) as Name[]) {
    for (const layout of ['single file', 'sharded'] as const) {
      it(`${name}, ${layout}: same layers, bit-identical codes and constants, same logits; peak <= final + largest weight`, async () => {
        for (const backend of backendsUnderTest()) {
          const source = () => openSource(layout === 'sharded' ? sharded(name) : files(name));
          const options = { quantType: 'nf4', doubleQuant: true, blockSize: 64 } as const;
          const reference = (await fromPretrained(source(), { backend, tokenizer: false })).model;
          const { report } = await quantizeModel(reference, options);

          const before = memory(backend).liveBytes;
          resetPeakMemory(backend);
          const { model } = await fromPretrained(source(), { backend, tokenizer: false, quantize: quantizeOnLoad(options) });
          const finalBytes = memory(backend).liveBytes - before;
          const peak = memory(backend).peakBytes - before;
          expect(peak, `${backend}: peak ${peak} vs final ${finalBytes}`).toBeLessThanOrEqual(finalBytes + largestWeightBytes(name, 4));

          const ours = model.namedModules().filter(([, m]) => m instanceof Linear4bit).map(([p]) => p);
          expect(ours, backend).toEqual(report.layers);
          expect(ours.length).toBeGreaterThan(0);
          expect(await records(model), backend).toEqual(await records(reference));
          expect(await fullPrecisionState(model), backend).toEqual(await fullPrecisionState(reference));
          expect(model.training).toBe(false);
          expect(model.trainableParameters().filter((p) => ours.some((l) => model.getSubmodule(l).parameters().includes(p)))).toEqual([]);
          expect(Array.from(await logits(model, backend)), backend).toEqual(Array.from(await logits(reference, backend)));
          model.dispose();
          reference.dispose();
        }
      });
    }
  }

  it('fp4, no double quantization, blocksize 128 and a skip list follow the options', async () => {
    for (const backend of backendsUnderTest()) {
      const options = { quantType: 'fp4', doubleQuant: false, blockSize: 128, skip: ['lm_head', 'o_proj'] } as const;
      const reference = (await fromPretrained(openSource(files('llama')), { backend, tokenizer: false })).model;
      const { report } = await quantizeModel(reference, options);
      const { model } = await fromPretrained(openSource(files('llama')), { backend, tokenizer: false, quantize: quantizeOnLoad(options) });
      expect(report.layers.some((p) => p.endsWith('o_proj'))).toBe(false);
      expect(model.namedModules().filter(([, m]) => m instanceof Linear4bit).map(([p]) => p)).toEqual(report.layers);
      expect(await records(model), backend).toEqual(await records(reference));
      model.dispose();
      reference.dispose();
    }
  });

  it('a head tied to the embedding stays in full precision even with an empty skip list (both paths)', async () => {
    for (const backend of backendsUnderTest()) {
      const reference = (await fromPretrained(openSource(files('gpt2')), { backend, tokenizer: false })).model;
      const { report } = await quantizeModel(reference, { skip: [] });
      expect(report.layers).not.toContain('lm_head');
      expect(reference.getInputEmbeddings().weight.isDisposed).toBe(false);
      const { model } = await fromPretrained(openSource(files('gpt2')), { backend, tokenizer: false, quantize: quantizeOnLoad({ skip: [] }) });
      expect(model.namedModules().filter(([, m]) => m instanceof Linear4bit).map(([p]) => p)).toEqual(report.layers);
      expect(Array.from(await logits(model, backend)), backend).toEqual(Array.from(await logits(reference, backend)));
      model.dispose();
      reference.dispose();
    }
  });

  it("dtype 'f16' with computeDtype 'f16': f16 full-precision weights, the f32 load's codes, the f16 two-step path's logits; peak <= final + largest f16 weight", async () => {
    for (const backend of backendsUnderTest()) {
      if (!getBackend(backend).capabilities.f16) continue;
      const reference32 = (await fromPretrained(openSource(files('qwen2')), { backend, tokenizer: false })).model;
      await quantizeModel(reference32, { computeDtype: 'f16' });
      const reference16 = (await fromPretrained(openSource(files('qwen2')), { backend, tokenizer: false, dtype: 'f16' })).model;
      await quantizeModel(reference16, { computeDtype: 'f16' });
      const before = memory(backend).liveBytes;
      resetPeakMemory(backend);
      const { model } = await fromPretrained(openSource(files('qwen2')), { backend, tokenizer: false, dtype: 'f16', quantize: quantizeOnLoad({ computeDtype: 'f16' }) });
      const finalBytes = memory(backend).liveBytes - before;
      expect(memory(backend).peakBytes - before).toBeLessThanOrEqual(finalBytes + largestWeightBytes('qwen2', 2));
      expect(model.getInputEmbeddings().weight.dtype).toBe('f16');
      // The codes come from the checkpoint's exact values, as bitsandbytes quantizes a bf16 weight.
      expect(await records(model), backend).toEqual(await records(reference32));
      expect(await fullPrecisionState(model), backend).toEqual(await fullPrecisionState(reference16));
      expect(Array.from(await logits(model, backend)), backend).toEqual(Array.from(await logits(reference16, backend)));
      model.dispose();
      reference16.dispose();
      reference32.dispose();
    }
  });
});

describe('quantizeOnLoad failures free everything', () => {
  it('a NaN in a later shard fails naming the file, the tensor and the block, after earlier layers were quantized', async () => {
    const key = 'model.layers.1.mlp.down_proj.weight';
    const poisoned = sharded('llama', (second) => {
      const raw = second.get(key)!;
      // bf16 NaN (0x7fc0) at element 200: block 3 of 64.
      raw.data[400] = 0xc0;
      raw.data[401] = 0x7f;
    });
    for (const backend of backendsUnderTest()) {
      const live = liveCounts(backend);
      const error = await fromPretrained(openSource(poisoned), { backend, tokenizer: false, quantize: quantizeOnLoad() }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toMatch(new RegExp(`^memory: quantize4bit\\(${key.replaceAll('.', '\\.')}\\): block 3 \\(elements 192\\.\\.255\\) holds a NaN`));
      expect(liveCounts(backend), backend).toEqual(live);
    }
  });

  it('a truncated later shard fails before anything is allocated', async () => {
    const good = sharded('llama');
    const broken = { ...good, 'model-00002-of-00002.safetensors': (good['model-00002-of-00002.safetensors'] as Uint8Array).subarray(0, 100) };
    for (const backend of backendsUnderTest()) {
      const live = liveCounts(backend);
      const peak = memory(backend).peakBytes;
      await expect(fromPretrained(openSource(broken), { backend, tokenizer: false, quantize: quantizeOnLoad() })).rejects.toThrow(/memory\/model-00002-of-00002\.safetensors: /);
      expect(liveCounts(backend), backend).toEqual(live);
      expect(memory(backend).peakBytes, backend).toBe(peak);
    }
  });

  it('refuses bad options and a plain object in place of a quantizer', async () => {
    expect(() => quantizeOnLoad({ quantType: 'int4' as never })).toThrow(/quantizeOnLoad: quantType must be 'nf4' or 'fp4', got "int4"/);
    expect(() => quantizeOnLoad({ blockSize: 48 })).toThrow(/blockSize 48 is not one of 32, 64/);
    const live = liveCounts('cpu');
    await expect(fromPretrained(openSource(files('llama')), { backend: 'cpu', tokenizer: false, quantize: { quantType: 'nf4' } as never })).rejects.toThrow(
      /'quantize' must be a quantizer such as quantizeOnLoad/,
    );
    expect(liveCounts('cpu')).toEqual(live);
  });
});
