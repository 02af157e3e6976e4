import { access, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CausalLM,
  type DownloadProgress,
  NetworkError,
  OfflineCacheError,
  RemoteFileError,
  type RawTensor,
  CharTokenizer,
  fromPretrained,
  openSource,
  parseSafetensors,
  serializeSafetensors,
} from '@webpeft/nn';
import { noGrad, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { type ModelFixture, b64F32, fixtureFiles } from './fixtures/models/fixture.js';
import { COMMIT, type HubServer, type ServedFiles, startHubServer } from './hub-server.js';

// Reference values: the golden logits of tools/golden/nn_models.py (transformers' own
// LlamaForCausalLM / GPT2LMHeadModel) for the first, unpadded row of each fixture.

let server: HubServer;
let cacheDir: string;
const enc = (s: string) => new TextEncoder().encode(s);

function files(fx: ModelFixture): ServedFiles {
  const f = fixtureFiles(fx);
  return { 'config.json': enc(f['config.json'] as string), 'model.safetensors': f['model.safetensors'] as Uint8Array };
}

/** The llama fixture plus a tokenizer and a generation config, as a repo has them. */
function llamaRepo(): ServedFiles {
  const tok = CharTokenizer.fromText('a tiny vocabulary of characters');
  return { ...files(llama), 'tokenizer.json': enc(JSON.stringify(tok.toJSON())), 'generation_config.json': enc('{"bos_token_id": 1, "eos_token_id": 2}') };
}

/** The gpt2 fixture split into two shards with an index (as transformers' sharded save). */
function shardedGpt2(): ServedFiles {
  const { tensors } = parseSafetensors(files(gpt2)['model.safetensors']);
  const keys = [...tensors.keys()];
  const half = Math.ceil(keys.length / 2);
  const shards = [keys.slice(0, half), keys.slice(half)];
  const out: ServedFiles = { 'config.json': files(gpt2)['config.json'] };
  const weightMap: Record<string, string> = {};
  shards.forEach((names, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    out[file] = serializeSafetensors(new Map(names.map((k) => [k, tensors.get(k) as RawTensor])), { format: 'pt' });
    for (const k of names) weightMap[k] = file;
  });
  out['model.safetensors.index.json'] = enc(JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return out;
}

async function firstRowLogits(model: CausalLM, fx: ModelFixture): Promise<Float32Array> {
  const row = fx.input_ids[0];
  const x = tensor(Int32Array.from(row), [1, row.length], { dtype: 'i32', backend: 'cpu' });
  const logits = await takeData(noGrad(() => model.forward({ inputIds: x }).logits));
  x.dispose();
  return logits as Float32Array;
}

const golden = (fx: ModelFixture) => b64F32(fx.logits).subarray(0, fx.input_ids[0].length * (JSON.parse(fx.files['config.json']) as { vocab_size: number }).vocab_size);
const exists = (p: string) => access(p).then(() => true, () => false);

beforeAll(async () => {
  await initBackends();
  server = await startHubServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'webpeft-hub-'));
  server.requests.length = 0;
  server.repos.clear();
  server.folders.clear();
});
afterEach(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

describe('fromPretrained from a Hub repo id (loopback Hub)', () => {
  it('downloads with progress into the HF cache layout, then loads again with no request', async () => {
    server.repos.set('test-org/tiny-llama', llamaRepo());
    const events: DownloadProgress[] = [];
    const opts = { hubUrl: server.url, cacheDir, backend: 'cpu' as const };
    const first = await fromPretrained('test-org/tiny-llama', { ...opts, onProgress: (p) => events.push(p) });
    expect(server.requests.length).toBeGreaterThan(0);
    expect(server.requests[0]).toMatch(/^GET \/api\/models\/test-org\/tiny-llama\/revision\/main/);
    // Progress: per file, bytes rise to the file's size, then one `done` event.
    const served = llamaRepo();
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json']) {
      const mine = events.filter((e) => e.file === file);
      const done = mine.filter((e) => e.done);
      expect(done, file).toHaveLength(1);
      expect(done[0].loaded).toBe(served[file].byteLength);
      const partial = mine.filter((e) => !e.done);
      expect(partial.length, file).toBeGreaterThan(0);
      expect(partial.at(-1)!.total).toBe(served[file].byteLength);
      expect(partial.every((e, i) => i === 0 || e.loaded >= partial[i - 1].loaded)).toBe(true);
    }
    // Hugging Face's layout: refs/main -> commit, snapshots/<commit>/<file>, .no_exist for absent files.
    const repoDir = join(cacheDir, 'models--test-org--tiny-llama');
    expect((await readFile(join(repoDir, 'refs', 'main'), 'utf8')).trim()).toBe(COMMIT);
    expect(await readFile(join(repoDir, 'snapshots', COMMIT, 'config.json'), 'utf8')).toBe(new TextDecoder().decode(served['config.json']));
    expect(await exists(join(repoDir, '.no_exist', COMMIT, 'special_tokens_map.json'))).toBe(true);
    expect(first.tokenizer).not.toBeNull();

    server.requests.length = 0;
    const second = await fromPretrained('test-org/tiny-llama', opts);
    expect(server.requests).toEqual([]);
    const local = await fromPretrained(openSource(fixtureFiles(llama)), { backend: 'cpu' });
    const [a, b, c] = [await firstRowLogits(first.model, llama), await firstRowLogits(second.model, llama), await firstRowLogits(local.model, llama)];
    expectClose(b, c, { rtol: 0, atol: 0, label: 'cached load vs local load' });
    expectClose(a, c, { rtol: 0, atol: 0, label: 'downloaded load vs local load' });
    expectClose(c, golden(llama), { rtol: 2e-4, atol: 2e-5, label: 'local load vs transformers' });
    for (const p of [first, second, local]) p.model.dispose();
  });

  it('a sharded checkpoint: index and every shard, cached; offline afterwards needs nothing', async () => {
    server.repos.set('test-org/tiny-gpt2', shardedGpt2());
    const opts = { hubUrl: server.url, cacheDir, backend: 'cpu' as const };
    const first = await fromPretrained('test-org/tiny-gpt2', opts);
    const resolved = server.requests.filter((r) => r.includes('/resolve/')).map((r) => r.split('/').at(-1));
    expect(new Set(resolved)).toEqual(new Set(['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']));
    server.requests.length = 0;
    const second = await fromPretrained('test-org/tiny-gpt2', { ...opts, offline: true });
    expect(server.requests).toEqual([]);
    expectClose(await firstRowLogits(second.model, gpt2), golden(gpt2), { rtol: 2e-4, atol: 2e-5, label: 'sharded gpt2 vs transformers' });
    for (const p of [first, second]) p.model.dispose();
  });

  it('errors name the repo and the file; a broken download leaves no cache entry', async () => {
    const opts = { hubUrl: server.url, cacheDir, backend: 'cpu' as const };
    const missingRepo = fromPretrained('test-org/nothing-here', opts);
    await expect(missingRepo).rejects.toThrow(RemoteFileError);
    await expect(missingRepo).rejects.toThrow(/test-org\/nothing-here@main: repository not found .*\(HTTP 404\); no local directory 'test-org\/nothing-here' either$/);

    const noShard = shardedGpt2();
    delete noShard['model-00002-of-00002.safetensors'];
    server.repos.set('test-org/no-shard', noShard);
    await expect(fromPretrained('test-org/no-shard', opts)).rejects.toThrow(/test-org\/no-shard@main: file 'model-00002-of-00002\.safetensors' is not in the repository/);

    server.repos.set('test-org/flaky', llamaRepo());
    server.breakNext = { file: 'model.safetensors' };
    await expect(fromPretrained('test-org/flaky', opts)).rejects.toThrow();
    const snapshot = join(cacheDir, 'models--test-org--flaky', 'snapshots', COMMIT);
    expect(await exists(join(snapshot, 'model.safetensors'))).toBe(false);
    const blobs = await readdir(join(cacheDir, 'models--test-org--flaky', 'blobs'));
    expect(blobs.filter((b) => !b.endsWith('.incomplete'))).toHaveLength(1); // config.json only
    // Offline with the incomplete cache: says what is missing.
    await expect(fromPretrained('test-org/flaky', { ...opts, offline: true })).rejects.toThrow(OfflineCacheError);
    await expect(fromPretrained('test-org/flaky', { ...opts, offline: true })).rejects.toThrow(/test-org\/flaky@main: offline.*'model\.safetensors/);
    // Online again: the download completes and the model loads.
    const ok = await fromPretrained('test-org/flaky', opts);
    expectClose(await firstRowLogits(ok.model, llama), golden(llama), { rtol: 2e-4, atol: 2e-5, label: 'after a retry' });
    ok.model.dispose();

    const offlineEmpty = fromPretrained('test-org/never-seen', { ...opts, offline: true });
    await expect(offlineEmpty).rejects.toThrow(/test-org\/never-seen@main: offline, and the cache lacks .*revision 'main'/);
  });

  it('a network failure names the URL', async () => {
    const closed = await startHubServer();
    const url = closed.url;
    await closed.close();
    const attempt = fromPretrained('test-org/tiny-llama', { hubUrl: url, cacheDir, backend: 'cpu' });
    await expect(attempt).rejects.toThrow(NetworkError);
    await expect(attempt).rejects.toThrow(new RegExp(`network request to ${url.replace(/\./g, '\\.')}/api/models/test-org/tiny-llama/revision/main.* failed: .*ECONNREFUSED`));
  });
});

describe('fromPretrained from an http(s) folder URL (loopback)', () => {
  it('downloads once; the second load makes no request and gives the same logits', async () => {
    server.folders.set('tiny-llama', llamaRepo());
    const url = `${server.url}/plain/tiny-llama/`;
    const first = await fromPretrained(url, { cacheDir, backend: 'cpu' });
    const fetched = server.requests.filter((r) => r.startsWith('GET')).map((r) => r.split('/').at(-1));
    expect(fetched).toContain('model.safetensors');
    expect(fetched).toContain('special_tokens_map.json'); // asked once, 404, remembered
    server.requests.length = 0;
    const second = await fromPretrained(new URL(url), { cacheDir, backend: 'cpu' });
    expect(server.requests).toEqual([]);
    expect(second.tokenizer).not.toBeNull();
    expectClose(await firstRowLogits(second.model, llama), await firstRowLogits(first.model, llama), { rtol: 0, atol: 0, label: 'cached vs downloaded' });
    expectClose(await firstRowLogits(second.model, llama), golden(llama), { rtol: 2e-4, atol: 2e-5, label: 'url folder vs transformers' });
    for (const p of [first, second]) p.model.dispose();
  });

  it('a download that breaks off leaves no cache entry, and the next load completes it', async () => {
    server.folders.set('flaky', llamaRepo());
    const url = `${server.url}/plain/flaky/`;
    server.breakNext = { file: 'model.safetensors' };
    await expect(fromPretrained(url, { cacheDir, backend: 'cpu' })).rejects.toThrow(/plain\/flaky\/model\.safetensors/);
    const [folder] = await readdir(join(cacheDir, '.webpeft-urls'));
    expect((await readdir(join(cacheDir, '.webpeft-urls', folder))).sort()).toEqual(['config.json']); // no partial file left
    await expect(fromPretrained(url, { cacheDir, backend: 'cpu', offline: true })).rejects.toThrow(/offline, and the cache lacks 'model\.safetensors/);
    const ok = await fromPretrained(url, { cacheDir, backend: 'cpu' });
    expectClose(await firstRowLogits(ok.model, llama), golden(llama), { rtol: 2e-4, atol: 2e-5, label: 'after a retry' });
    ok.model.dispose();
  });

  it('an index naming a shard outside the folder is refused before any request for it', async () => {
    const evil = shardedGpt2();
    const index = JSON.parse(new TextDecoder().decode(evil['model.safetensors.index.json'])) as { weight_map: Record<string, string> };
    const first = Object.keys(index.weight_map)[0];
    index.weight_map[first] = '../../escape.safetensors';
    evil['model.safetensors.index.json'] = enc(JSON.stringify(index));
    server.folders.set('evil', evil);
    await expect(fromPretrained(`${server.url}/plain/evil/`, { cacheDir, backend: 'cpu' })).rejects.toThrow(/model\.safetensors\.index\.json: shard name '\.\.\/\.\.\/escape\.safetensors' is not a relative file name inside the model folder/);
    expect(server.requests.some((r) => r.includes('escape'))).toBe(false);
  });

  it('a folder without config.json names the URL and the file', async () => {
    server.folders.set('empty', {});
    await expect(fromPretrained(`${server.url}/plain/empty`, { cacheDir, backend: 'cpu' })).rejects.toThrow(
      new RegExp(`${server.url.replace(/\./g, '\\.')}/plain/empty/: file 'config\\.json' not found at .*/plain/empty/config\\.json \\(HTTP 404\\)`),
    );
  });
});
