/**
 * Vite config of the studio: the workspace packages resolve to their sources (no build
 * needed, as in the root vitest config) with their browser implementations of
 * `#gpu-provider` and `#fs-source`, the worker is an ES module, and the default model's
 * files are served (dev) and emitted (build) under `default-model/`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Plugin, defineConfig } from 'vite';
import { DEFAULT_MODEL_ROUTE } from './src/paths.ts';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));
/**
 * The default model's folder on disk, through the package's `./model/*` export (read
 * from disk rather than imported, so the config needs no build of the package).
 */
const modelDir = dirname(createRequire(import.meta.url).resolve('@webpeft/default-model/model/config.json'));
const modelFiles = readdirSync(modelDir);

/** Serves the default model files in dev and emits them as assets in a build. */
function defaultModel(): Plugin {
  return {
    name: 'webpeft-default-model',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const m = new RegExp(`^/${DEFAULT_MODEL_ROUTE}/([^?]+)`).exec(req.url ?? '');
        if (!m || !modelFiles.includes(m[1])) return next();
        res.setHeader('Content-Type', m[1].endsWith('.json') ? 'application/json' : 'application/octet-stream');
        res.end(readFileSync(join(modelDir, m[1])));
      });
    },
    generateBundle() {
      for (const file of modelFiles) this.emitFile({ type: 'asset', fileName: `${DEFAULT_MODEL_ROUTE}/${file}`, source: readFileSync(join(modelDir, file)) });
    },
  };
}

export default defineConfig({
  root: src('.'),
  base: './',
  resolve: {
    alias: {
      // Subpath exports first: an alias also matches its key followed by '/'.
      '@webpeft/tensor/kernel': src('../../packages/tensor/src/kernel.ts'),
      '@webpeft/tensor': src('../../packages/tensor/src/index.ts'),
      '@webpeft/nn': src('../../packages/nn/src/index.ts'),
      '@webpeft/optim': src('../../packages/optim/src/index.ts'),
      '@webpeft/quant': src('../../packages/quant/src/index.ts'),
      '@webpeft/peft': src('../../packages/peft/src/index.ts'),
      '#gpu-provider': src('../../packages/tensor/src/backends/webgpu/gpu-provider.browser.ts'),
      '#fs-source': src('../../packages/nn/src/io/fs-source.browser.ts'),
    },
  },
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
  plugins: [defaultModel()],
});
