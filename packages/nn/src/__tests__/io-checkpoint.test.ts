import { tensor } from '@webpeft/tensor';
import { initBackends, takeArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MissingFileError,
  loadCheckpoint,
  memoryTarget,
  openSource,
  parseSafetensors,
  rawFromArray,
  rawToTensor,
  saveSafetensors,
  serializeSafetensors,
} from '../io/index.js';

beforeAll(async () => {
  await initBackends();
});

const w0 = rawFromArray(new Float32Array([0.5, -1.5, 2.25, 8]), [2, 2]);
const b0 = rawFromArray(new Float32Array([3, -4]), [2], 'BF16');
const ids = rawFromArray(new Int32Array([7, 8, 9]), [3]);
const shard1 = serializeSafetensors({ 'h.0.w': w0, 'h.0.b': b0 }, { format: 'pt' });
const shard2 = serializeSafetensors({ ids }, { format: 'pt' });
const index = {
  metadata: { total_size: 36 },
  weight_map: { 'h.0.w': 'model-00001-of-00002.safetensors', 'h.0.b': 'model-00001-of-00002.safetensors', ids: 'model-00002-of-00002.safetensors' },
};

describe('loadCheckpoint', () => {
  it('reads a single model.safetensors', async () => {
    const raw = await loadCheckpoint(openSource({ 'model.safetensors': shard1 }));
    expect([...raw.keys()].sort()).toEqual(['h.0.b', 'h.0.w']);
    expect(await takeArray(rawToTensor(raw.get('h.0.b')!, { backend: 'cpu' }))).toEqual([3, -4]);
  });

  it('reads a sharded checkpoint through its index', async () => {
    const source = openSource({
      'model.safetensors.index.json': JSON.stringify(index),
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': shard2.buffer as ArrayBuffer,
    });
    const raw = await loadCheckpoint(source);
    expect([...raw.keys()].sort()).toEqual(['h.0.b', 'h.0.w', 'ids']);
    expect(raw.get('h.0.w')).toEqual(w0);
    expect(await takeArray(rawToTensor(raw.get('ids')!, { backend: 'cpu' }))).toEqual([7, 8, 9]);
  });

  it('names a missing shard', async () => {
    const source = openSource({ 'model.safetensors.index.json': JSON.stringify(index), 'model-00001-of-00002.safetensors': shard1 });
    const err = await loadCheckpoint(source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingFileError);
    expect((err as Error).message).toMatch(/memory: no file 'model-00002-of-00002\.safetensors'.*lists shard/);
  });

  it('names a key the index puts in a shard that lacks it', async () => {
    const bad = { weight_map: { ...index.weight_map, 'h.1.w': 'model-00002-of-00002.safetensors' } };
    const source = openSource({
      'model.safetensors.index.json': JSON.stringify(bad),
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': shard2,
    });
    await expect(loadCheckpoint(source)).rejects.toThrow(/weight_map puts 'h\.1\.w' in 'model-00002-of-00002\.safetensors', which does not contain it/);
  });

  it('rejects a malformed index and explains a missing checkpoint', async () => {
    await expect(loadCheckpoint(openSource({ 'model.safetensors.index.json': '{"weight_map": 3}' }))).rejects.toThrow(/has no "weight_map" object/);
    await expect(loadCheckpoint(openSource({ 'config.json': '{}' }))).rejects.toThrow(/memory: no file 'model\.safetensors' \(nor a sharded index/);
    await expect(loadCheckpoint(openSource({ 'pytorch_model.bin': new Uint8Array(4) }))).rejects.toThrow(/pickle checkpoints are not supported/);
  });

  it('errors from a corrupt shard name the shard file', async () => {
    const cut = shard1.slice(0, shard1.length - 2);
    await expect(loadCheckpoint(openSource({ 'model.safetensors': cut }))).rejects.toThrow(/memory\/model\.safetensors: /);
  });
});

describe('saveSafetensors', () => {
  it('writes tensors that read back with the same dtypes and values', async () => {
    const target = memoryTarget();
    const tensors = {
      'lora_A.weight': tensor(new Float32Array([0.25, -0.5, 1e-3, 7]), [2, 2], { backend: 'cpu' }),
      steps: tensor(new Int32Array([42]), [1], { backend: 'cpu' }),
    };
    await saveSafetensors(target, 'adapter_model.safetensors', tensors, { format: 'pt' });
    const { metadata, tensors: back } = parseSafetensors(target.files.get('adapter_model.safetensors')!, 'adapter_model.safetensors');
    expect(metadata).toEqual({ format: 'pt' });
    expect(back.get('lora_A.weight')!.dtype).toBe('F32');
    expect(await takeArray(rawToTensor(back.get('lora_A.weight')!, { backend: 'cpu' }))).toEqual(await tensors['lora_A.weight'].toArray());
    expect(await takeArray(rawToTensor(back.get('steps')!, { backend: 'cpu' }))).toEqual([42]);
    for (const t of Object.values(tensors)) t.dispose();
  });

  it('memory sources read text and bytes and report absent files', async () => {
    const source = openSource({ 'config.json': '{"n_embd": 8}', 'x.bin': new Uint8Array([1, 2]) });
    expect(JSON.parse(await source.readText('config.json'))).toEqual({ n_embd: 8 });
    expect(await source.has('x.bin')).toBe(true);
    expect(await source.has('y.bin')).toBe(false);
    await expect(source.readBytes('y.bin')).rejects.toThrow(/memory: no file 'y\.bin'/);
  });
});
