/** The Node directory store: all-or-nothing commits, no overwrite without asking, nothing left behind. */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, fileCheckpointStore } from '../index.js';

const root = mkdtempSync(join(tmpdir(), 'webpeft-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bytes = (text: string) => new TextEncoder().encode(text);
const files = (entries: Record<string, string>) => new Map(Object.entries(entries).map(([k, v]) => [k, bytes(v)]));

describe('fileCheckpointStore', () => {
  it('commits a folder in one rename and reads it back', async () => {
    const store = fileCheckpointStore();
    const dir = join(root, 'a', 'checkpoint-1');
    expect(await store.exists(dir)).toBe(false);
    await store.commit(dir, files({ 'x.bin': 'one', 'y.json': '{}' }), { overwrite: false });
    expect(readdirSync(dir).sort()).toEqual(['x.bin', 'y.json']);
    expect(new TextDecoder().decode(await store.read(dir, 'x.bin'))).toBe('one');
    expect(await store.read(dir, 'absent')).toBeUndefined();
    expect(readdirSync(join(root, 'a'))).toEqual(['checkpoint-1']);
  });

  it('refuses to replace a folder without overwrite, and replaces it whole with it', async () => {
    const store = fileCheckpointStore();
    const dir = join(root, 'b');
    await store.commit(dir, files({ 'x.bin': 'old', 'old-only': '1' }), { overwrite: false });
    const err = await store.commit(dir, files({ 'x.bin': 'new' }), { overwrite: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toBe(`${dir}: a checkpoint already exists there (pass overwrite to replace it)`);
    expect(readFileSync(join(dir, 'x.bin'), 'utf8')).toBe('old');
    await store.commit(dir, files({ 'x.bin': 'new' }), { overwrite: true });
    expect(readdirSync(dir)).toEqual(['x.bin']);
    expect(readFileSync(join(dir, 'x.bin'), 'utf8')).toBe('new');
    expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a commit that fails midway leaves the old folder as it was and no temporary folder', async () => {
    const store = fileCheckpointStore();
    const parent = join(root, 'c');
    const dir = join(parent, 'ck');
    await store.commit(dir, files({ 'x.bin': 'old' }), { overwrite: false });
    // The second file cannot be created (its folder does not exist in the temporary folder).
    const err = await store.commit(dir, files({ 'x.bin': 'new', 'no/such/file': 'y' }), { overwrite: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: saving failed \\(.*ENOENT.*\\); nothing was replaced$`));
    expect(readFileSync(join(dir, 'x.bin'), 'utf8')).toBe('old');
    expect(readdirSync(parent)).toEqual(['ck']);
  });

  it('names a file where a folder is needed, and an unwritable parent', async () => {
    const store = fileCheckpointStore();
    const file = join(root, 'plain-file');
    writeFileSync(file, 'user data');
    await expect(store.commit(file, files({ a: 'b' }), { overwrite: true })).rejects.toThrow(`${file}: exists and is not a directory; a checkpoint is a folder`);
    expect(readFileSync(file, 'utf8')).toBe('user data');
    await expect(store.commit(join(file, 'ck'), files({ a: 'b' }), { overwrite: false })).rejects.toThrow(/plain-file\/ck: cannot create its parent folder/);
    mkdirSync(join(root, 'd'));
    await expect(store.read(file, 'x')).rejects.toThrow(`${file}: not a directory`);
  });
});
