/**
 * The OPFS store in a real browser file system: a checkpoint saved there loads back
 * exactly, an existing folder is replaced only with overwrite, and no temporary folder
 * is left behind.
 */
import { AdamW } from '@webpeft/optim';
import { type Tensor, tensor } from '@webpeft/tensor';
import { initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, opfsCheckpointStore, saveCheckpoint } from '../index.js';

beforeAll(async () => {
  await initBackends();
});

const opfs = typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function';

// OPFS exists only in browsers: the browser project runs these; Node has no such file system to test.
describe.runIf(opfs)('opfsCheckpointStore', () => {
  it('saves, refuses to overwrite without asking, replaces with overwrite, and loads back exactly', async () => {
    const root = await navigator.storage.getDirectory();
    const base = `webpeft-test-${Date.now()}`;
    const store = opfsCheckpointStore(root);
    const w = tensor(randomArray(6, 1), [2, 3], { backend: 'cpu', requiresGrad: true });
    w.grad = tensor(randomArray(6, 2), [2, 3], { backend: 'cpu' });
    const opt = new AdamW([{ params: [w], names: ['w'] }]);
    await opt.step();
    const dir = `${base}/run/checkpoint-1`;
    await saveCheckpoint(store, dir, { weights: { w }, optimizer: opt, step: 1, dataPosition: 7 });
    await expect(saveCheckpoint(store, dir, { weights: { w }, optimizer: opt, step: 1 })).rejects.toThrow(/a checkpoint already exists there/);
    await saveCheckpoint(store, dir, { weights: { w }, optimizer: opt, step: 1, dataPosition: 8 }, { overwrite: true });
    const saved = Array.from((await w.data()) as Float32Array);

    const v: Tensor = tensor(randomArray(6, 9), [2, 3], { backend: 'cpu', requiresGrad: true });
    const fresh = new AdamW([{ params: [v], names: ['w'] }]);
    const loaded = await loadCheckpoint(store, dir, { weights: { w: v }, optimizer: fresh });
    expect(loaded.dataPosition).toBe(8);
    expect(Array.from((await v.data()) as Float32Array)).toEqual(saved);
    expect(Object.keys((await fresh.stateDict()).state)).toEqual(['0']);

    const runDir = await (await root.getDirectoryHandle(base)).getDirectoryHandle('run');
    const names: string[] = [];
    for await (const [name] of runDir as unknown as AsyncIterable<[string, unknown]>) names.push(name);
    expect(names).toEqual(['checkpoint-1']);
    await root.removeEntry(base, { recursive: true });
    for (const o of [opt, fresh]) o.disposeState();
    w.grad?.dispose();
    w.dispose();
    v.dispose();
  });
});
