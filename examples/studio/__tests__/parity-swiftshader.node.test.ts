/**
 * Node = browser, bit for bit, on the same Vulkan driver: Dawn in this test process is
 * pointed at the SwiftShader that Chromium uses, the page trains QLoRA on the default
 * model, and the worker's own session code run here with the same seed, data and
 * settings must give identical per-step losses and identical adapter bytes. (Across
 * drivers, lavapipe vs SwiftShader, studio-e2e.node.test.ts allows 1e-5 relative.)
 * About three minutes on 2 cores: SwiftShader compiles every pipeline twice, in the
 * browser and in Dawn here.
 */
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '@webpeft/quant';
import { getBackend } from '@webpeft/tensor';
import { initBackends } from '@webpeft/test-utils';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHROMIUM_SWIFTSHADER_ICD } from '../../../tools/chromium-webgpu.ts';
import type { TrainSettings } from '../src/protocol.ts';
import { SAMPLE_TEXT } from '../src/sample-text.ts';
import { StudioSession } from '../src/session.ts';
import { type Studio, downloadOf, startStudio } from './harness.ts';

// Read by the Vulkan loader when Dawn creates its instance (in initBackends below), so
// setting it here, after the imports, is in time.
process.env.VK_ICD_FILENAMES = CHROMIUM_SWIFTSHADER_ICD;

const RUN: TrainSettings = { method: 'qlora', rank: 4, alpha: 8, targets: 'all-linear', numVirtualTokens: 8, useRslora: false, loraInit: 'default', loftqIter: 1, reductionFactor: 16, nonLinearity: 'swish', encoder: 'mlp', encoderHiddenSize: 0, lr: 0.01, steps: 4, batch: 1, seqLen: 8, evalEvery: 0, seed: 5, text: SAMPLE_TEXT, dataName: 'sample.txt', packing: false, completionOnly: 'auto' };

let studio: Studio | null = null;

beforeAll(async () => {
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
  studio = await startStudio();
});

afterAll(async () => {
  await studio?.close();
});

it('gives the page\'s per-step losses and adapter bytes exactly when Node runs on Chromium\'s SwiftShader', { timeout: 480_000 }, async () => {
  const info = getBackend('webgpu').adapterInfo;
  expect(`${info?.vendor} ${info?.architecture}`, `Dawn must run on SwiftShader (${CHROMIUM_SWIFTSHADER_ICD})`).toMatch(/swiftshader/i);

  const context = await studio!.browser.newContext({ acceptDownloads: true });
  let pageLosses: number[];
  let pageAdapter: Record<string, Uint8Array>;
  try {
    const page = await context.newPage();
    await page.goto(studio!.url);
    await expect.poll(() => page.isEnabled('#load-model'), { timeout: 30_000 }).toBe(true);
    await page.click('#load-model');
    await expect.poll(() => page.isEnabled('#train'), { timeout: 60_000 }).toBe(true);
    await page.selectOption('#method', RUN.method);
    const fields: [string, string][] = [['#rank', String(RUN.rank)], ['#alpha', String(RUN.alpha)], ['#targets', RUN.targets], ['#lr', String(RUN.lr)], ['#steps', String(RUN.steps)], ['#batch', String(RUN.batch)], ['#seq-len', String(RUN.seqLen)], ['#eval-every', String(RUN.evalEvery)], ['#seed', String(RUN.seed)]];
    for (const [sel, value] of fields) await page.fill(sel, value);
    await page.click('#sample-text');
    await page.click('#train');
    await expect.poll(() => page.textContent('#train-status'), { timeout: 120_000 }).toBe('done');
    pageLosses = await page.$$eval('#loss-list li', (items) => items.map((li) => Number((li as HTMLElement).dataset.loss)));
    pageAdapter = unzipSync(await downloadOf(page, 'download-adapter'));
  } finally {
    await context.close();
  }

  const nodeLosses: number[] = [];
  const session = new StudioSession((e) => {
    if (e.type === 'step') nodeLosses.push(e.loss);
  });
  let nodeAdapter: Record<string, Uint8Array>;
  try {
    await session.load({ kind: 'default', url: DEFAULT_MODEL_URL.href });
    await session.train(RUN);
    nodeAdapter = (await session.exportAdapter()).files;
  } finally {
    session.dispose();
  }
  expect(pageLosses).toHaveLength(RUN.steps);
  expect(nodeLosses).toEqual(pageLosses);
  expect(Object.keys(nodeAdapter).sort()).toEqual(Object.keys(pageAdapter).sort());
  for (const name of Object.keys(nodeAdapter)) expect(Buffer.from(nodeAdapter[name]).equals(Buffer.from(pageAdapter[name])), `${name} differs`).toBe(true);
});
