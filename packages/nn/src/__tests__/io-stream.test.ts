/**
 * Checkpoints are read tensor by tensor: `openCheckpoint` reads only the headers, and
 * `fromPretrained` reads each tensor's byte range when it copies it in, so host memory
 * holds one tensor at a time and tensors the model ignores are never read. A counting
 * source records every ranged read. The checkpoint is transformers' tiny LLaMA
 * (`fixtures/models/llama.json`, bf16 weights).
 */
import type { BackendName } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ModelSource,
  type RandomAccessFile,
  type RawTensor,
  SAFETENSORS_ITEM_SIZE,
  SafetensorsError,
  fromPretrained,
  loadCheckpoint,
  openCheckpoint,
  openSource,
  parseSafetensors,
  rawFromArray,
  serializeSafetensors,
} from '../index.js';
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { type ModelFixture, fixtureFiles } from './fixtures/models/fixture.js';
import { handMade } from './io-helpers.js';

beforeAll(async () => {
  await initBackends();
});

const fx = llama as ModelFixture;
const good = fixtureFiles(fx);
const IGNORED = 'model.layers.0.self_attn.rotary_emb.inv_freq';

/** The fixture checkpoint plus a tensor every LLaMA load ignores (an old RoPE buffer). */
function withIgnored(): Uint8Array {
  const { tensors } = parseSafetensors(good['model.safetensors'] as Uint8Array, 'base');
  const copy = new Map<string, RawTensor>(tensors);
  copy.set(IGNORED, rawFromArray(Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)), [4096]));
  return serializeSafetensors(copy, { format: 'pt' });
}

interface Read {
  file: string;
  offset: number;
  length: number;
}

/** `inner` with every ranged read recorded, and the most reads ever in flight at once. */
function counting(inner: ModelSource): { source: ModelSource; reads: Read[]; maxInFlight: () => number } {
  const reads: Read[] = [];
  let inFlight = 0;
  let most = 0;
  const source: ModelSource = {
    name: inner.name,
    has: (f) => inner.has(f),
    readBytes: (f) => inner.readBytes(f),
    readText: (f) => inner.readText(f),
    async openFile(file: string): Promise<RandomAccessFile> {
      const f = await inner.openFile!(file);
      return {
        size: f.size,
        async read(offset, length) {
          reads.push({ file, offset, length });
          most = Math.max(most, ++inFlight);
          try {
            return await f.read(offset, length);
          } finally {
            inFlight--;
          }
        },
      };
    },
  };
  return { source, reads, maxInFlight: () => most };
}

/** bf16 bits -> value: the bits are the top half of an f32 (float64 arithmetic, no decoder under test). */
function bf16Values(raw: RawTensor): number[] {
  const out: number[] = [];
  for (let i = 0; i < raw.data.length; i += 2) {
    const bits = (raw.data[i] | (raw.data[i + 1] << 8)) << 16;
    const sign = bits >>> 31 ? -1 : 1;
    const exp = (bits >>> 23) & 0xff;
    const mant = bits & 0x7fffff;
    out.push(exp === 0 ? sign * mant * 2 ** -149 : sign * (1 + mant / 2 ** 23) * 2 ** (exp - 127));
  }
  return out;
}

describe('openCheckpoint reads headers only', () => {
  it('reads the 8-byte length and the header, then exactly one range per tensor asked for', async () => {
    const bytes = withIgnored();
    const { source, reads } = counting(openSource({ 'model.safetensors': bytes }));
    const ckpt = await openCheckpoint(source);
    const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    expect(reads).toEqual([
      { file: 'model.safetensors', offset: 0, length: 8 },
      { file: 'model.safetensors', offset: 8, length: headerLen },
    ]);
    const info = ckpt.tensors.get('model.norm.weight')!;
    expect(info).toMatchObject({ key: 'model.norm.weight', dtype: 'BF16', file: 'model.safetensors', byteLength: info.shape[0] * 2 });
    const raw = await ckpt.read('model.norm.weight');
    expect(reads).toHaveLength(3);
    expect(reads[2].length).toBe(info.byteLength);
    // The bytes are the file's: the same as a whole-file parse gives.
    const whole = parseSafetensors(bytes, 'whole').tensors.get('model.norm.weight')!;
    expect([...raw.data]).toEqual([...whole.data]);
    await expect(ckpt.read('model.nope')).rejects.toThrow(/memory: no tensor 'model\.nope' in the checkpoint/);
  });

  it('a sharded checkpoint is checked from its headers, and loadCheckpoint still returns every tensor', async () => {
    const { tensors } = parseSafetensors(good['model.safetensors'] as Uint8Array, 'base');
    const keys = [...tensors.keys()];
    const half = Math.ceil(keys.length / 2);
    const shard = (ks: string[]) => serializeSafetensors(new Map(ks.map((k) => [k, tensors.get(k)!])), { format: 'pt' });
    const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const weightMap = Object.fromEntries(keys.map((k, i) => [k, names[i < half ? 0 : 1]]));
    const files = { 'model.safetensors.index.json': JSON.stringify({ metadata: {}, weight_map: weightMap }), [names[0]]: shard(keys.slice(0, half)), [names[1]]: shard(keys.slice(half)) };
    const { source, reads } = counting(openSource(files));
    const ckpt = await openCheckpoint(source);
    expect(reads.map((r) => r.offset)).toEqual([0, 8, 0, 8]);
    expect(ckpt.tensors.get(keys[keys.length - 1])!.file).toBe(names[1]);
    const all = await loadCheckpoint(openSource(files));
    expect([...all.keys()].sort()).toEqual([...keys].sort());
  });

  it('a tensor whose byte range runs past the end of the file names the file and the tensor', async () => {
    const f32 = new Uint8Array(new Float32Array([1, 2]).buffer);
    // Header intact, data cut after the first tensor.
    const full = handMade({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32);
    const err = await openCheckpoint(openSource({ 'model.safetensors': full.subarray(0, full.length - 4) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toMatch(/^memory\/model\.safetensors: tensor 'b': data_offsets \[4, 8\] out of range of the 4-byte data buffer: the tensor runs past the end of the file/);
  });

  it('a file that shrinks after its header was read fails on the tensor past its new end', async () => {
    const bytes = withIgnored();
    let size = bytes.length;
    const shrinking: ModelSource = {
      ...openSource({}),
      name: 'shrinking',
      has: async () => true,
      openFile: async () => ({ size: bytes.length, read: async (o, n) => bytes.subarray(o, Math.min(size, o + n)) }),
    };
    const ckpt = await openCheckpoint(shrinking);
    size = bytes.length - 10;
    const last = [...ckpt.tensors.keys()].at(-1)!;
    await expect(ckpt.read(last)).rejects.toThrow(new RegExp(`^shrinking/model\\.safetensors: tensor '${last.replace(/\./g, '\\.')}': bytes \\[\\d+, ${bytes.length}\\) run past the end of the file, which now ends at byte ${size}`));
  });

  it('picked Files are read by Blob slices: the tensors equal a whole-file parse', async () => {
    const bytes = withIgnored();
    const source = openSource([new File([bytes.slice()], 'model.safetensors')]);
    const ckpt = await openCheckpoint(source);
    const whole = parseSafetensors(bytes, 'whole').tensors;
    for (const key of ['model.norm.weight', IGNORED]) expect([...(await ckpt.read(key)).data], key).toEqual([...whole.get(key)!.data]);
  });

  it('a source that reads whole files only (an http folder) still loads', async () => {
    const inner = openSource({ 'model.safetensors': withIgnored() });
    const wholeOnly: ModelSource = { name: 'whole', has: (f) => inner.has(f), readBytes: (f) => inner.readBytes(f), readText: (f) => inner.readText(f) };
    const raw = await (await openCheckpoint(wholeOnly)).read(IGNORED);
    expect(raw.shape).toEqual([4096]);
  });
});

describe('fromPretrained streams the checkpoint', () => {
  const load = async (backend: BackendName) => {
    const bytes = withIgnored();
    const counted = counting(openSource({ ...good, 'model.safetensors': bytes }));
    const { model } = await fromPretrained(counted.source, { backend, tokenizer: false });
    return { model, bytes, ...counted };
  };

  it('reads each used tensor once, one at a time, never the ignored one', async () => {
    for (const backend of backendsUnderTest()) {
      const live = liveCounts(backend);
      const { model, bytes, reads, maxInFlight } = await load(backend);
      try {
        const { tensors } = parseSafetensors(bytes, 'whole');
        const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
        const dataStart = 8 + headerLen;
        const dataReads = reads.filter((r) => r.offset >= dataStart);
        const used = [...tensors].filter(([k]) => k !== IGNORED);
        expect(dataReads).toHaveLength(used.length);
        expect(maxInFlight()).toBe(1);
        // Peak host bytes held from the file: the largest tensor, never more.
        const largest = Math.max(...used.map(([, raw]) => raw.data.length));
        expect(Math.max(...dataReads.map((r) => r.length))).toBe(largest);
        const total = reads.reduce((a, r) => a + r.length, 0);
        expect(total).toBe(8 + headerLen + used.reduce((a, [, raw]) => a + raw.data.length, 0));
        expect(total).toBe(bytes.length - tensors.get(IGNORED)!.data.length);
        // The values loaded are the file's (bf16 -> f32 is exact).
        for (const key of ['model.norm.weight', 'model.layers.1.mlp.down_proj.weight']) {
          const raw = tensors.get(key)!;
          expect(SAFETENSORS_ITEM_SIZE[raw.dtype]).toBe(2);
          expect(Array.from(await model.stateDict().get(key)!.data()), key).toEqual(bf16Values(raw));
        }
      } finally {
        model.dispose();
      }
      expect(liveCounts(backend), backend).toEqual(live);
    }
  });

  it('a failed read frees everything allocated', async () => {
    const backend = backendsUnderTest()[0];
    const bytes = withIgnored();
    const inner = openSource({ ...good, 'model.safetensors': bytes });
    let reads = 0;
    const failing: ModelSource = {
      ...inner,
      name: 'failing',
      openFile: async (file) => {
        const f = await inner.openFile!(file);
        return { size: f.size, read: async (o, n) => (++reads > 5 ? new Uint8Array(0) : f.read(o, n)) };
      },
    };
    const live = liveCounts(backend);
    await expect(fromPretrained(failing, { backend, tokenizer: false })).rejects.toThrow(/^failing\/model\.safetensors: tensor '[^']+': bytes \[\d+, \d+\) run past the end of the file/);
    expect(liveCounts(backend)).toEqual(live);
  });
});
