import { mkdtemp, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tensor } from '@webpeft/tensor';
import { initBackends, takeArray } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, openCheckpoint, openSource, openTarget, rawToTensor, saveSafetensors } from '../io/index.js';

let dir: string;
beforeAll(async () => {
  await initBackends();
  dir = await mkdtemp(join(tmpdir(), 'webpeft-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('local directories (Node)', () => {
  it('writes into nested directories and loads the checkpoint back', async () => {
    const out = join(dir, 'nested', 'model');
    const target = openTarget(out);
    await target.writeText('config.json', '{"vocab_size": 3}');
    const w = tensor(new Float32Array([1, 2, 3]), [3], { backend: 'cpu' });
    await saveSafetensors(target, 'model.safetensors', { w }, { format: 'pt' });
    w.dispose();
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))).toEqual({ vocab_size: 3 });
    const source = openSource(out);
    expect(await source.has('model.safetensors')).toBe(true);
    expect(await source.has('missing.json')).toBe(false);
    const raw = await loadCheckpoint(source);
    expect(await takeArray(rawToTensor(raw.get('w')!, { backend: 'cpu' }))).toEqual([1, 2, 3]);
    await expect(source.readText('missing.json')).rejects.toThrow(/no file 'missing\.json'/);
  });

  it('opens a file: URL as the local directory it names', async () => {
    const out = join(dir, 'with space');
    await openTarget(out).writeText('config.json', '{"vocab_size": 5}');
    const source = openSource(pathToFileURL(`${out}/`));
    expect(await source.has('config.json')).toBe(true);
    expect(JSON.parse(await source.readText('config.json'))).toEqual({ vocab_size: 5 });
  });

  it('reads a local file by ranges: a tensor past the end of a file cut after opening names the file and the tensor', async () => {
    const out = join(dir, 'ranged');
    const a = tensor(Float32Array.from({ length: 1000 }, (_, i) => Math.cos(i)), [1000], { backend: 'cpu' });
    const b = tensor(Float32Array.from({ length: 500 }, (_, i) => i / 7), [500], { backend: 'cpu' });
    await saveSafetensors(openTarget(out), 'model.safetensors', { a, b }, { format: 'pt' });
    a.dispose();
    b.dispose();
    const ckpt = await openCheckpoint(openSource(out));
    const raw = await ckpt.read('b');
    expect(await takeArray(rawToTensor(raw, { backend: 'cpu' }))).toEqual(Array.from({ length: 500 }, (_, i) => Math.fround(i / 7)));
    const file = join(out, 'model.safetensors');
    const { size } = await stat(file);
    await truncate(file, size - 100);
    // Tensors sort by name: 'b' is last, so its range now runs past the end; 'a' still reads.
    expect((await ckpt.read('a')).data.length).toBe(4000);
    await expect(ckpt.read('b')).rejects.toThrow(new RegExp(`ranged/model\\.safetensors: tensor 'b': bytes \\[\\d+, ${size}\\) run past the end of the file, which now ends at byte ${size - 100}`));
    // Opened again, the header no longer fits the file: the same error as a whole-file parse.
    await expect(openCheckpoint(openSource(out))).rejects.toThrow(/ranged\/model\.safetensors: tensor 'b': data_offsets \[4000, 6000\] out of range of the 5900-byte data buffer: the tensor runs past the end of the file/);
  });
});
