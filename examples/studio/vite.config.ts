/**
 * Vite config of the studio: the workspace packages resolve to their sources (no build
 * needed, as in the root vitest config) with the browser implementations of their
 * `#...` imports (`#gpu-provider`, `#fs-source`, ...), the worker is an ES module, and the default model's
 * files are served (dev) and emitted (build) under `default-model/`.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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

/**
 * `@webpeft/<pkg>` (and `@webpeft/tensor/kernel`) to the package's sources, and every
 * `#name` import of a package to the source of its `browser` target (`./dist/x.js` ->
 * `./src/x.ts`), read from the packages' own `imports` maps so a new one needs no edit here.
 */
function browserSourceAliases(): { find: RegExp; replacement: string }[] {
  const packagesDir = src('../../packages/');
  const escaped = (specifier: string) => specifier.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const exactly = (specifier: string) => new RegExp(`^${escaped(specifier)}$`);
  const aliases = [{ find: exactly('@webpeft/tensor/kernel'), replacement: join(packagesDir, 'tensor/src/kernel.ts') }];
  for (const dir of readdirSync(packagesDir)) {
    const manifestPath = join(packagesDir, dir, 'package.json');
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { name: string; imports?: Record<string, { browser?: string }> };
    for (const [name, targets] of Object.entries(manifest.imports ?? {})) {
      if (!targets.browser) continue;
      const file = join(packagesDir, dir, targets.browser.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'));
      if (!existsSync(file)) throw new Error(`studio vite config: ${manifest.name}'s import ${name} (browser: ${targets.browser}) has no source file ${file}`);
      aliases.push({ find: exactly(name), replacement: file });
    }
    const entry = join(packagesDir, dir, 'src/index.ts');
    if (existsSync(entry)) aliases.push({ find: exactly(manifest.name), replacement: entry });
  }
  return aliases;
}

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
  resolve: { alias: browserSourceAliases() },
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
  plugins: [defaultModel()],
});
