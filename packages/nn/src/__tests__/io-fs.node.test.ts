import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tensor } from '@webpeft/tensor';
import { initBackends, takeArray } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, openSource, openTarget, rawToTensor, saveSafetensors } from '../io/index.js';

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
});
