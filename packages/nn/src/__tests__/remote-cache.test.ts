import { type CausalLM, CharTokenizer, OfflineCacheError, fromPretrained, openSource } from '@webpeft/nn';
import { noGrad, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import llama from './fixtures/models/llama.json' with { type: 'json' };
import { b64F32, fixtureFiles } from './fixtures/models/fixture.js';

// The browser side of remote loading: the Cache API store. Node has no Cache API, and its
// store (Hugging Face's cache directory) is covered against a real loopback server in
// remote-load.node.test.ts; so this file runs where `caches` exists (the browser project).
// A browser test cannot start a server: the Hub is a fetch function here, counting calls.
// Reference logits: tools/golden/nn_models.py (transformers' LlamaForCausalLM).

const COMMIT = 'fedcba9876543210fedcba9876543210fedcba98';
const HUB = 'https://hub.invalid';
const enc = (s: string) => new TextEncoder().encode(s);

function repoFiles(): Record<string, Uint8Array> {
  const f = fixtureFiles(llama);
  const tok = CharTokenizer.fromText('a tiny vocabulary of characters');
  return { 'config.json': enc(f['config.json'] as string), 'model.safetensors': f['model.safetensors'] as Uint8Array, 'tokenizer.json': enc(JSON.stringify(tok.toJSON())) };
}

/** A Hub (`/api/models/{repo}/revision/{rev}`, `/{repo}/resolve/{rev}/{file}`) and a plain folder, as a fetch. */
function fakeHub(files: Record<string, Uint8Array>, calls: string[]): typeof fetch {
  return async (input) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    calls.push(url.pathname);
    if (/^\/api\/models\/test-org\/tiny\/revision\/main$/.test(url.pathname)) {
      return Response.json({ _id: 'x', id: 'test-org/tiny', sha: COMMIT, lastModified: '2026-01-01T00:00:00.000Z', siblings: Object.keys(files).map((rfilename) => ({ rfilename })) });
    }
    const m = /^\/(?:test-org\/tiny\/resolve\/[0-9a-f]{40}|plain)\/(.+)$/.exec(url.pathname);
    const bytes = m ? files[m[1]] : undefined;
    if (!bytes) return new Response('not found', { status: 404 });
    return new Response(bytes.slice(), { headers: { 'content-length': String(bytes.byteLength) } });
  };
}

async function firstRowLogits(model: CausalLM): Promise<Float32Array> {
  const row = llama.input_ids[0];
  const x = tensor(Int32Array.from(row), [1, row.length], { dtype: 'i32', backend: 'cpu' });
  const out = await takeData(noGrad(() => model.forward({ inputIds: x }).logits));
  x.dispose();
  return out as Float32Array;
}
const golden = () => b64F32(llama.logits).subarray(0, llama.input_ids[0].length * (JSON.parse(llama.files['config.json']) as { vocab_size: number }).vocab_size);

const hasCacheApi = typeof caches !== 'undefined';
let cacheName = '';
beforeAll(async () => {
  await initBackends();
});
afterEach(async () => {
  if (hasCacheApi && cacheName) await caches.delete(cacheName);
});

describe.runIf(hasCacheApi)('remote loading through the Cache API (browser)', () => {
  it('a Hub repo: downloads once, then loads from the Cache API with no request', async () => {
    cacheName = `webpeft-test-${Math.random().toString(36).slice(2)}`;
    const calls: string[] = [];
    const opts = { hubUrl: HUB, cacheDir: cacheName, fetch: fakeHub(repoFiles(), calls), backend: 'cpu' as const };
    const first = await fromPretrained('test-org/tiny', opts);
    expect(calls.filter((c) => c.includes('/resolve/')).map((c) => c.split('/').at(-1)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    calls.length = 0;
    const second = await fromPretrained('test-org/tiny', { ...opts, offline: true });
    expect(calls).toEqual([]);
    expect(second.tokenizer).not.toBeNull();
    const local = await fromPretrained(openSource(fixtureFiles(llama)), { backend: 'cpu' });
    expectClose(await firstRowLogits(second.model), await firstRowLogits(local.model), { rtol: 0, atol: 0, label: 'cached vs local' });
    expectClose(await firstRowLogits(first.model), golden(), { rtol: 2e-4, atol: 2e-5, label: 'downloaded vs transformers' });
    for (const p of [first, second, local]) p.model.dispose();
  });

  it('a URL folder: cached after one load; offline with an empty cache names what is missing', async () => {
    cacheName = `webpeft-test-${Math.random().toString(36).slice(2)}`;
    const calls: string[] = [];
    const opts = { cacheDir: cacheName, fetch: fakeHub(repoFiles(), calls), backend: 'cpu' as const };
    const offline = fromPretrained(`${HUB}/plain/`, { ...opts, offline: true });
    await expect(offline).rejects.toBeInstanceOf(OfflineCacheError);
    await expect(offline).rejects.toThrow(/hub\.invalid\/plain\/: offline, and the cache lacks 'config\.json', 'model\.safetensors/);
    expect(calls).toEqual([]);
    const first = await fromPretrained(`${HUB}/plain/`, opts);
    calls.length = 0;
    const second = await fromPretrained(`${HUB}/plain/`, opts);
    expect(calls).toEqual([]);
    expectClose(await firstRowLogits(second.model), golden(), { rtol: 2e-4, atol: 2e-5, label: 'url folder from the Cache API vs transformers' });
    for (const p of [first, second]) p.model.dispose();
  });
});
