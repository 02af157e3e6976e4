/**
 * The studio end to end in real headless Chromium (Debian's, SwiftShader WebGPU): build
 * the app with Vite, serve the build on 127.0.0.1, pick the default model, choose
 * QLoRA, train a few steps (the loss chart fills and the loss falls), generate, download
 * the adapter and the page's logits for the prompt, then load the downloaded adapter in
 * Node with `loadPeftModel` on the same 4-bit base and compare logits. Screenshots of
 * each stage go to `examples/studio/.screenshots/` (gitignored); a failing test attaches
 * the page as it was. Any console error on the page fails the test.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { type CausalLM, fromPretrained } from '@webpeft/nn';
import { loadPeftModel, memoryFiles } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { getBackend, noGrad, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TrainSettings } from '../src/protocol.ts';
import { SAMPLE_TEXT } from '../src/sample-text.ts';
import { StudioSession } from '../src/session.ts';
import type { Page } from 'playwright';
import { type Studio, downloadOf, startStudio } from './harness.ts';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
/** Where the screenshots of each stage go (gitignored). */
const SHOTS = here('../.screenshots/');
/** The page's logits (SwiftShader) vs Node's (Dawn on this machine's driver): same kernels, same 4-bit base; only float rounding differs. */
const LOGITS_ABS_TOL = 1e-4;
const LOGITS_REL_TOL = 1e-4;

/** What the test types into the page (the rest are the page's defaults). */
const PAGE_RUN: TrainSettings = { method: 'qlora', rank: 8, alpha: 16, targets: 'all-linear', numVirtualTokens: 8, useRslora: false, loraInit: 'default', loftqIter: 1, reductionFactor: 16, nonLinearity: 'swish', encoder: 'mlp', encoderHiddenSize: 0, lr: 0.01, steps: 10, batch: 2, seqLen: 16, evalEvery: 5, seed: 0, text: SAMPLE_TEXT, dataName: 'sample.txt', packing: false, completionOnly: 'auto' };
/**
 * Per-step losses, page vs Node on another driver. The two adapters run different
 * kernels for the same ops (the matmul tiles and the 4-bit gemv are chosen per adapter
 * class: lavapipe gets the wide tiles and the lanes kernel, SwiftShader the small ones),
 * so f32 sums are ordered differently and 10 steps of training carry that rounding:
 * measured 1.3e-5 at most; a wrong kernel moves a loss by far more than 1e-4.
 */
const LOSS_REL_TOL = 1e-4;

let studio: Studio | null = null;
/** A model folder whose config names a model type the library does not build. */
let unsupportedDir = '';

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
  studio = await startStudio();
  unsupportedDir = mkdtempSync(join(tmpdir(), 'webpeft-studio-bert-'));
  writeFileSync(join(unsupportedDir, 'config.json'), JSON.stringify({ model_type: 'bert', vocab_size: 30522, hidden_size: 768 }));
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await studio?.close();
  if (unsupportedDir) rmSync(unsupportedDir, { recursive: true, force: true });
});

/** Node's logits `[1, T, V]` for `ids` from the downloaded adapter on the default model quantized as the page did. */
async function nodeLogits(files: Record<string, Uint8Array>, ids: number[]): Promise<ArrayLike<number>> {
  const { model } = await fromPretrained(DEFAULT_MODEL_URL, { tokenizer: false });
  let owner: { dispose(): void } = model;
  try {
    await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
    const peft = await loadPeftModel(model, memoryFiles(files));
    owner = peft;
    const logits = noGrad(() => tidy(() => (peft.model as CausalLM).forward({ inputIds: tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' }) }).logits));
    try {
      return await logits.data();
    } finally {
      logits.dispose();
    }
  } finally {
    owner.dispose();
  }
}

/** The GPU Dawn uses in this process. */
function nodeAdapter(): string {
  const info = getBackend('webgpu').adapterInfo;
  return info ? `${info.vendor} ${info.architecture} ${info.description}`.trim() : 'unknown';
}

/** The GPU named in the page's model line (`...; GPU: google swiftshader`). */
function webgpuAdapterOf(modelInfo: string | null): string {
  return /GPU: (.*)$/.exec(modelInfo ?? '')?.[1] ?? 'unknown';
}

/** The page's run (the settings the test types in), repeated in Node through the worker's own session code. */
async function nodeRunLosses(): Promise<number[]> {
  const losses: number[] = [];
  const session = new StudioSession((e) => {
    if (e.type === 'step') losses.push(e.loss);
  });
  try {
    await session.load({ kind: 'default', url: DEFAULT_MODEL_URL.href });
    await session.train(PAGE_RUN);
  } finally {
    session.dispose();
  }
  return losses;
}


it('fine-tunes the default model with QLoRA in the tab, and the downloaded adapter gives the same logits in Node', { timeout: 360_000 }, async ({ annotate, onTestFailed }) => {
  expect(backendsUnderTest()).toContain('webgpu');
  const context = await studio!.browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  const shot = async (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  onTestFailed(async () => {
    const path = join(SHOTS, 'failure.png');
    await page.screenshot({ path, fullPage: true });
    await annotate('the page when the test failed', { path, contentType: 'image/png' });
  });
  try {
    await page.goto(studio!.url);
    // WebGPU is required: the page's own check must pass and enable the controls.
    expect(await page.evaluate(() => 'gpu' in navigator)).toBe(true);
    await expect.poll(() => page.isEnabled('#load-model'), { timeout: 30_000 }).toBe(true);
    expect(await page.isHidden('#alert')).toBe(true);
    await shot('1-start');

    // Keyboard: Tab reaches the main controls in reading order.
    await page.focus('body');
    const focused: string[] = [];
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('Tab');
      focused.push(await page.evaluate(() => document.activeElement?.id || (document.activeElement as HTMLInputElement | null)?.name || ''));
    }
    const order = ['model-source', 'load-model', 'method', 'rank', 'alpha', 'targets', 'lr'];
    expect(focused.filter((id) => order.includes(id))).toEqual(order);

    // A malformed data file is named with its line, and nothing else changes.
    const textBefore = await page.inputValue('#data-text');
    await page.setInputFiles('#data-file', { name: 'bad.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from('{"text":"fine"}\n{"text": oops}\n') });
    await expect.poll(() => page.getAttribute('#alert', 'data-kind')).toBe('malformed-file');
    expect(await page.textContent('#alert .message')).toMatch(/^bad\.jsonl:2: not valid JSON/);
    expect(await page.inputValue('#data-text')).toBe(textBefore);

    // A model folder by URL goes through the download cache, with per-file progress.
    await page.check('input[name="model-source"][value="url"]');
    await page.fill('#model-url', `${studio!.url}default-model/`);
    await page.click('#load-model');
    await expect.poll(() => page.textContent('#model-info'), { timeout: 60_000 }).toMatch(/default-model\/: llama, 2,410,176 parameters/);
    expect(await page.isVisible('#download-progress')).toBe(true);
    expect(await page.textContent('#download-label')).toMatch(/\(cached\)$/);

    await page.check('input[name="model-source"][value="default"]');
    await page.click('#load-model');
    await expect.poll(() => page.textContent('#model-info'), { timeout: 60_000 }).toMatch(/llama, 2,410,176 parameters/);
    await shot('2-model-loaded');

    await page.selectOption('#method', PAGE_RUN.method);
    await page.fill('#rank', String(PAGE_RUN.rank));
    await page.fill('#alpha', String(PAGE_RUN.alpha));
    await page.fill('#targets', PAGE_RUN.targets);
    await page.fill('#lr', String(PAGE_RUN.lr));
    await page.fill('#steps', String(PAGE_RUN.steps));
    await page.fill('#batch', String(PAGE_RUN.batch));
    await page.fill('#seq-len', String(PAGE_RUN.seqLen));
    await page.fill('#eval-every', String(PAGE_RUN.evalEvery));
    await page.fill('#seed', String(PAGE_RUN.seed));
    await page.click('#sample-text');
    expect(await page.inputValue('#data-text')).toBe(PAGE_RUN.text);
    await page.click('#train');
    // The chart updates while training runs.
    await expect.poll(async () => Number(await page.getAttribute('#loss-chart', 'data-points')), { timeout: 120_000 }).toBeGreaterThan(0);
    await shot('3-training');
    await expect.poll(() => page.textContent('#train-status'), { timeout: 150_000 }).toBe('done');
    await shot('4-trained');
    const losses = await page.$$eval('#loss-list li', (items) => items.map((li) => Number((li as HTMLElement).dataset.loss)));
    expect(losses).toHaveLength(10);
    for (const l of losses) expect(Number.isFinite(l)).toBe(true);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)));
    const evals = [...((await page.textContent('#log')) ?? '').matchAll(/step (\d+): eval loss ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(evals.length).toBeGreaterThanOrEqual(3);
    expect(evals[evals.length - 1]).toBeLessThan(evals[0]);
    expect(Number(await page.getAttribute('#loss-chart', 'data-points'))).toBe(11); // step 0 (eval) + 10 steps

    await page.fill('#prompt', 'Log of the sloop');
    await page.fill('#new-tokens', '8');
    await page.click('#generate');
    await expect.poll(() => page.textContent('#out-adapted'), { timeout: 60_000 }).toMatch(/^Log of the sloop.+/);
    const base = (await page.textContent('#out-base')) ?? '';
    expect(base).toMatch(/^Log of the sloop/);
    await shot('5-generated');
    await page.locator('section:has(#h-train)').screenshot({ path: join(SHOTS, 'readme-train.png') });

    const zip = unzipSync(await downloadOf(page, 'download-adapter'));
    expect(Object.keys(zip).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(zip['adapter_config.json'])) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16 });
    const page_ = JSON.parse(new TextDecoder().decode(await downloadOf(page, 'download-logits'))) as { inputIds: number[]; shape: number[]; logits: number[] };
    expect(page_.shape).toEqual([1, page_.inputIds.length, 4096]);

    const node = await nodeLogits(zip, page_.inputIds);
    expect(node.length).toBe(page_.logits.length);
    let worst = 0;
    let maxAbs = 0;
    for (let i = 0; i < node.length; i++) {
      const d = Math.abs(node[i] - page_.logits[i]);
      maxAbs = Math.max(maxAbs, d);
      worst = Math.max(worst, d - LOGITS_REL_TOL * Math.abs(node[i]));
    }
    await annotate(`logits page (SwiftShader) vs Node: max abs difference ${maxAbs.toExponential(2)} over ${node.length} values`);
    expect(worst).toBeLessThanOrEqual(LOGITS_ABS_TOL);

    // Node = browser: the same session code, seed, data, model and method in Node (Dawn)
    // gives the page's per-step losses (different Vulkan drivers: rounding only).
    const nodeLosses = await nodeRunLosses();
    let worstRel = 0;
    for (let i = 0; i < losses.length; i++) worstRel = Math.max(worstRel, Math.abs(nodeLosses[i] - losses[i]) / Math.abs(nodeLosses[i]));
    const parity = { pageAdapter: webgpuAdapterOf(await page.textContent('#model-info')), nodeAdapter: nodeAdapter(), pageLosses: losses, nodeLosses, maxRelLossDiff: worstRel, maxAbsLogitDiff: maxAbs };
    writeFileSync(join(SHOTS, 'parity.json'), `${JSON.stringify(parity, null, 2)}\n`);
    await annotate(`per-step losses page vs Node: max relative difference ${worstRel.toExponential(2)} (written to ${join(SHOTS, 'parity.json')})`);
    expect(nodeLosses).toHaveLength(losses.length);
    expect(worstRel, `page ${losses.join(' ')}\nnode ${nodeLosses.join(' ')}`).toBeLessThanOrEqual(LOSS_REL_TOL);

    // The narrow layout: nothing wider than a 400 px viewport.
    await page.setViewportSize({ width: 400, height: 800 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(400);
    await shot('6-narrow');
    expect(consoleErrors).toEqual([]);
  } finally {
    await context.close();
  }
});

it('explains a browser without WebGPU, with the flags to try, and keeps the controls off', async () => {
  const context = await studio!.browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    // What a browser without WebGPU looks like to the page.
    await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    await page.goto(studio!.url);
    await expect.poll(() => page.getAttribute('#alert', 'data-kind'), { timeout: 30_000 }).toBe('no-webgpu');
    const text = (await page.textContent('#alert')) ?? '';
    expect(text).toContain('navigator.gpu is undefined');
    expect(text).toContain('--enable-unsafe-webgpu');
    expect(await page.isDisabled('#load-model')).toBe(true);
    expect(await page.isDisabled('#train')).toBe(true);
    await page.screenshot({ path: join(SHOTS, '0-no-webgpu.png') });
  } finally {
    await context.close();
  }
});

/** A page of the studio in a fresh context, with `initScript` run before the page's own scripts. */
async function openPage(query = '', initScript?: () => void): Promise<{ page: Page; close: () => Promise<void> }> {
  const context = await studio!.browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${studio!.url}${query}`);
  await expect.poll(() => page.isEnabled('#load-model'), { timeout: 30_000 }).toBe(true);
  return { page, close: () => context.close() };
}

/** Loads the default model on `page` and waits for the model line. */
async function loadDefaultModel(page: Page): Promise<void> {
  await page.check('input[name="model-source"][value="default"]');
  await page.click('#load-model');
  await expect.poll(() => page.textContent('#model-info'), { timeout: 60_000 }).toMatch(/llama, 2,410,176 parameters/);
}

/** Trains `method` from the page's form with small settings and returns the held-out losses the log lists (first: before training). */
async function trainOnPage(page: Page, method: string, fields: Record<string, string>): Promise<number[]> {
  await page.selectOption('#method', method);
  for (const [id, value] of Object.entries({ steps: '6', batch: '2', 'seq-len': '16', 'eval-every': '0', seed: '1', ...fields })) await page.fill(`#${id}`, value);
  await page.click('#sample-text');
  // The log keeps earlier runs: read only what this one adds.
  const logBefore = ((await page.textContent('#log')) ?? '').length;
  await page.click('#train');
  await expect.poll(() => page.textContent('#train-status'), { timeout: 150_000 }).toBe('done');
  expect(await page.isHidden('#alert')).toBe(true);
  const log = ((await page.textContent('#log')) ?? '').slice(logBefore);
  return [...log.matchAll(/step (\d+): eval loss ([\d.]+)/g)].map((m) => Number(m[2]));
}

it('chooses a model folder with the File System Access API where the browser has it, and with the folder input where not', { timeout: 180_000 }, async () => {
  // The picker returns handles over the served default model's files (and a subfolder, which is skipped).
  const fsa = await openPage('', () => {
    const names = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
    const file = (name: string) => ({ kind: 'file' as const, name, getFile: async () => new File([await (await fetch(`default-model/${name}`)).blob()], name) });
    (window as unknown as { showDirectoryPicker: () => Promise<unknown> }).showDirectoryPicker = async () => ({
      kind: 'directory',
      name: 'my-model',
      async *values() {
        yield { kind: 'directory', name: 'nested', values: async function* () {} };
        for (const n of names) yield file(n);
      },
    });
  });
  try {
    const { page } = fsa;
    await page.check('input[name="model-source"][value="folder"]');
    expect(await page.isVisible('#pick-folder')).toBe(true);
    expect(await page.isHidden('#model-folder')).toBe(true);
    await page.click('#pick-folder');
    await expect.poll(() => page.textContent('#folder-info')).toBe('my-model: 5 files (config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json)');
    await page.click('#load-model');
    await expect.poll(() => page.textContent('#model-info'), { timeout: 60_000 }).toMatch(/^my-model.*: llama, 2,410,176 parameters/);
    await page.screenshot({ path: join(SHOTS, '1c-folder-picker.png') });
  } finally {
    await fsa.close();
  }

  // A cancelled picker changes nothing and shows no error.
  const cancelled = await openPage('', () => {
    (window as unknown as { showDirectoryPicker: () => Promise<unknown> }).showDirectoryPicker = () => Promise.reject(new DOMException('The user aborted a request.', 'AbortError'));
  });
  try {
    const { page } = cancelled;
    await page.check('input[name="model-source"][value="folder"]');
    await page.click('#pick-folder');
    await expect.poll(() => page.isEnabled('#load-model')).toBe(true);
    expect(await page.textContent('#folder-info')).toBe('No folder chosen.');
    expect(await page.isHidden('#alert')).toBe(true);
  } finally {
    await cancelled.close();
  }

  // Without the API (Firefox, Safari): the folder input, here with a model type the library does not build.
  const fallback = await openPage('', () => {
    delete (window as unknown as { showDirectoryPicker?: unknown }).showDirectoryPicker;
  });
  try {
    const { page } = fallback;
    await page.check('input[name="model-source"][value="folder"]');
    expect(await page.isHidden('#pick-folder')).toBe(true);
    expect(await page.isVisible('#model-folder')).toBe(true);
    await page.setInputFiles('#model-folder', unsupportedDir);
    await page.click('#load-model');
    await expect.poll(() => page.getAttribute('#alert', 'data-kind'), { timeout: 30_000 }).toBe('unsupported-model');
    expect(await page.textContent('#alert .message')).toMatch(/model_type "bert" is not supported/);
    await page.screenshot({ path: join(SHOTS, '1b-unsupported-model.png'), fullPage: true });
  } finally {
    await fallback.close();
  }
});

it('trains a Houlsby bottleneck adapter and P-tuning (LSTM) in the tab: the held-out loss falls and the adapters download as PEFT files', { timeout: 300_000 }, async () => {
  const { page, close } = await openPage();
  try {
    await loadDefaultModel(page);
    const houlsby = await trainOnPage(page, 'adapter-houlsby', { lr: '0.01' });
    expect(houlsby).toHaveLength(2);
    // Six AdamW steps on the ship's log (the model has read Moby-Dick): a clear fall, not rounding.
    expect(houlsby[1]).toBeLessThan(houlsby[0] - 0.1);
    const bottleneck = unzipSync(await downloadOf(page, 'download-adapter'));
    expect(JSON.parse(new TextDecoder().decode(bottleneck['adapter_config.json']))).toMatchObject({ peft_type: 'BOTTLENECK', mh_adapter: true, output_adapter: true, reduction_factor: 16, non_linearity: 'swish' });
    await page.click('#merge-download');
    await expect.poll(() => page.getAttribute('#alert', 'data-kind')).toBe('invalid-setting');
    expect(await page.textContent('#alert .message')).toMatch(/BOTTLENECK: .* cannot be merged/);

    await page.fill('#lr', '0.03');
    await page.selectOption('#method', 'p-tuning');
    await page.selectOption('#encoder', 'lstm');
    const pTuning = await trainOnPage(page, 'p-tuning', { 'virtual-tokens': '4', 'encoder-hidden': '32' });
    expect(pTuning).toHaveLength(2);
    expect(pTuning[1]).toBeLessThan(pTuning[0] - 0.1);
    const prompt = unzipSync(await downloadOf(page, 'download-adapter'));
    expect(JSON.parse(new TextDecoder().decode(prompt['adapter_config.json']))).toMatchObject({ peft_type: 'P_TUNING', encoder_reparameterization_type: 'LSTM', encoder_hidden_size: 32, num_virtual_tokens: 4 });
    await page.screenshot({ path: join(SHOTS, '7-p-tuning.png'), fullPage: true });
  } finally {
    await close();
  }
});

it('shows the out-of-memory box with the memory by tag when a step cannot allocate', { timeout: 180_000 }, async () => {
  // The test hook makes step 2 allocate more than any device binding: the backend's own OutOfMemoryError.
  const { page, close } = await openPage('?oom-at-step=2');
  try {
    await loadDefaultModel(page);
    await page.selectOption('#method', 'lora');
    for (const [id, value] of Object.entries({ steps: '3', batch: '1', 'seq-len': '16', 'eval-every': '0' })) await page.fill(`#${id}`, value);
    await page.click('#train');
    await expect.poll(() => page.getAttribute('#alert', 'data-kind'), { timeout: 120_000 }).toBe('out-of-memory');
    expect(await page.textContent('#alert h2')).toBe('Out of device memory');
    expect(await page.textContent('#alert .message')).toMatch(/^webgpu: a tensor of 4398046511104 bytes exceeds the adapter's largest buffer \(maxBufferSize \d+ bytes\)/);
    expect(await page.textContent('#alert table caption')).toBe('Device memory by tag at the failure');
    const rows = await page.$$eval('#alert table tr', (trs) => trs.map((tr) => [tr.querySelector('th')?.textContent, tr.querySelector('td')?.textContent]));
    expect(rows.map(([tag]) => tag)).toEqual(['weights', 'grads', 'optimizer', 'activations', 'quant', 'other']);
    // The base's f32 weights are live at the failure: 2,410,176 parameters = 9.19 MiB, plus LoRA's.
    const weightsMiB = Number(/^([\d.]+) MiB$/.exec(rows[0][1] ?? '')?.[1]);
    expect(weightsMiB).toBeGreaterThan(9.19);
    expect(await page.textContent('#train-status')).toBe('failed');
    // One step ran and was applied: the adapter is usable.
    expect(await page.$$eval('#loss-list li', (items) => items.length)).toBe(1);
    await page.locator('#alert').screenshot({ path: join(SHOTS, '8-out-of-memory.png') });
  } finally {
    await close();
  }
});
