/**
 * Checkpoints whose weights the model cannot take: a dtype it cannot hold (F64, which
 * would be rounded, and I8 for a float weight), a shard index naming a file that is not
 * there, and a bf16 value beyond f16's range in an f16 load. Each fails with a typed error
 * naming the file and the tensor and leaves no live tensor or buffer; the first three are
 * found before anything is allocated. The checkpoint is transformers' own
 * (`fixtures/models/llama.json`, bf16 weights).
 */
import { getBackend, memory } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type RawTensor, MissingFileError, WeightsMismatchError, fromPretrained, openSource, parseSafetensors, serializeSafetensors } from '../index.js';
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { fixtureFiles } from './fixtures/models/fixture.js';

beforeAll(async () => {
  await initBackends();
});

const good = fixtureFiles(llama);
const Q = 'model.layers.0.self_attn.q_proj.weight';
const UP = 'model.layers.1.mlp.up_proj.weight';

function edited(edit: (t: Map<string, RawTensor>) => void): Uint8Array {
  const { tensors } = parseSafetensors(good['model.safetensors'] as Uint8Array, 'base');
  const copy = new Map([...tensors].map(([k, v]) => [k, { ...v, data: v.data.slice() }]));
  edit(copy);
  return serializeSafetensors(copy, { format: 'pt' });
}

/** `key` re-encoded in another dtype of `bytes` bytes per element (values from a float64 view of fresh data). */
function retyped(key: string, dtype: 'F64' | 'I8'): Uint8Array {
  return edited((t) => {
    const r = t.get(key)!;
    const n = r.shape.reduce((a, b) => a * b, 1);
    const data = dtype === 'F64' ? new Uint8Array(Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1) / 7).buffer) : Uint8Array.from({ length: n }, (_, i) => (i * 37) % 251);
    t.set(key, { dtype, shape: r.shape, data });
  });
}

/** The checkpoint as two shards whose index names a third, absent one. */
function shardedWithMissing(): Record<string, Uint8Array | string> {
  const { tensors } = parseSafetensors(good['model.safetensors'] as Uint8Array, 'base');
  const keys = [...tensors.keys()];
  const weightMap = Object.fromEntries(keys.map((k, i) => [k, i % 2 === 0 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
  return {
    'config.json': good['config.json'],
    'model.safetensors.index.json': JSON.stringify({ metadata: {}, weight_map: weightMap }),
    'model-00001-of-00002.safetensors': serializeSafetensors(new Map(keys.filter((_, i) => i % 2 === 0).map((k) => [k, tensors.get(k)!])), { format: 'pt' }),
  };
}

const BEFORE_ALLOCATION = [
  { label: 'F64 weights', files: { ...good, 'model.safetensors': retyped(Q, 'F64') }, type: WeightsMismatchError, error: /in memory:\n\s+dtype: model\.layers\.0\.self_attn\.q_proj\.weight: F64 weights cannot be held/ },
  { label: 'I8 weights for a float parameter', files: { ...good, 'model.safetensors': retyped(Q, 'I8') }, type: WeightsMismatchError, error: /in memory:\n\s+dtype: model\.layers\.0\.self_attn\.q_proj\.weight: the model holds a float tensor, the file I8/ },
  { label: 'a shard index naming a missing file', files: shardedWithMissing(), type: MissingFileError, error: /^memory: no file 'model-00002-of-00002\.safetensors' \(model\.safetensors\.index\.json lists shard/ },
];

describe('weights the model cannot take', () => {
  for (const f of BEFORE_ALLOCATION) {
    it(`${f.label}: a typed error naming the file and tensor before any allocation`, async () => {
      for (const backend of backendsUnderTest()) {
        const live = liveCounts(backend);
        const peak = memory(backend).peakBytes;
        const error = await fromPretrained(openSource(f.files), { backend, tokenizer: false }).catch((e: unknown) => e);
        expect(error, String(error)).toBeInstanceOf(f.type);
        expect((error as Error).message).toMatch(f.error);
        expect(liveCounts(backend), backend).toEqual(live);
        expect(memory(backend).peakBytes, backend).toBe(peak);
      }
    });
  }

  it("a bf16 value beyond f16's range in an f16 load names the file, tensor and element and frees the half-built model", async () => {
    // bf16 bits of 1e5 (0x47c3 = 99840) at element 9 of a late layer: the layers before it are loaded when it fails.
    const bytes = edited((t) => {
      const r = t.get(UP)!;
      r.data[18] = 0xc3;
      r.data[19] = 0x47;
    });
    for (const backend of backendsUnderTest()) {
      if (!getBackend(backend).capabilities.f16) continue;
      const live = liveCounts(backend);
      const error = await fromPretrained(openSource({ ...good, 'model.safetensors': bytes }), { backend, tokenizer: false, dtype: 'f16' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toMatch(/^memory: rawToTensor 'model\.layers\.1\.mlp\.up_proj\.weight': element 9 is 99840, beyond f16's range/);
      expect(liveCounts(backend), backend).toEqual(live);
    }
  });
});
