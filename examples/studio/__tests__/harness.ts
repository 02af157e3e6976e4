/**
 * The built studio in headless Chromium, for the end-to-end tests: a Vite build in a
 * temporary folder, served on 127.0.0.1 and a free port, and Debian's Chromium with
 * SwiftShader WebGPU (the repository's flags).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright';
import { build } from 'vite';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../../../tools/chromium-webgpu.ts';
import { serveFolder } from './static-server.ts';

/** A running studio: its URL, the browser, and how to tear both down. */
export interface Studio {
  url: string;
  browser: Browser;
  close(): Promise<void>;
}

/** Builds the studio, serves it and starts Chromium. */
export async function startStudio(): Promise<Studio> {
  const outDir = mkdtempSync(join(tmpdir(), 'webpeft-studio-'));
  await build({ configFile: fileURLToPath(new URL('../vite.config.ts', import.meta.url)), build: { outDir, emptyOutDir: true }, logLevel: 'warn' });
  const server = await serveFolder(outDir);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_WEBGPU_ARGS], headless: true });
  return {
    url: server.url,
    browser,
    async close() {
      await browser.close();
      await server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}

/** Clicks `buttonId` and returns the bytes of the download it starts. */
export async function downloadOf(page: Page, buttonId: string): Promise<Uint8Array> {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click(`#${buttonId}`)]);
  return new Uint8Array(readFileSync(await download.path()));
}
