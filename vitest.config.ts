import { fileURLToPath } from 'node:url';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from './tools/chromium-webgpu.ts';

// Dawn reads the Vulkan driver choice from the real environment before it loads.
process.env.XDG_RUNTIME_DIR ??= '/tmp';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Workspace packages resolve to their sources, so tests need no build. */
const packageAliases = {
  // Subpath exports first: an alias also matches its key followed by '/'.
  '@webpeft/tensor/kernel': src('./packages/tensor/src/kernel.ts'),
  '@webpeft/tensor': src('./packages/tensor/src/index.ts'),
  '@webpeft/test-utils/real-shapes': src('./packages/test-utils/src/real-shapes.ts'),
  '@webpeft/test-utils': src('./packages/test-utils/src/index.ts'),
  '@webpeft/nn': src('./packages/nn/src/index.ts'),
  '@webpeft/optim': src('./packages/optim/src/index.ts'),
  '@webpeft/quant': src('./packages/quant/src/index.ts'),
  '@webpeft/peft': src('./packages/peft/src/index.ts'),
  '@webpeft/default-model': src('./packages/default-model/src/index.ts'),
  '@webpeft/trainer': src('./packages/trainer/src/index.ts'),
};

/** Fails any test that leaves tensors or buffers alive (opt-out: keepsStateAcrossTests). */
const setupFiles = [src('./packages/test-utils/src/leak-check-setup.ts')];

const include = ['packages/*/src/**/__tests__/**/*.test.ts', 'examples/*/__tests__/**/*.test.ts'];
/** In CI a missing WebGPU adapter fails the run instead of skipping. */
const requireWebGpu = process.env.CI === 'true' || process.env.CI === '1' || process.env.WEBPEFT_REQUIRE_WEBGPU === '1';

export default defineConfig({
  test: {
    provide: { requireWebGpu },
    projects: [
      {
        resolve: {
          alias: {
            ...packageAliases,
            '#gpu-provider': src('./packages/tensor/src/backends/webgpu/gpu-provider.node.ts'),
            '#fs-source': src('./packages/nn/src/io/fs-source.node.ts'),
            '#remote-store': src('./packages/nn/src/io/remote-store.node.ts'),
            '#checkpoint-fs': src('./packages/trainer/src/store-fs.node.ts'),
          },
        },
        test: {
          name: 'node',
          include,
          environment: 'node',
          setupFiles,
          // Dawn must not be collected or shared across worker threads: one process per file.
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        resolve: {
          alias: {
            ...packageAliases,
            '#gpu-provider': src('./packages/tensor/src/backends/webgpu/gpu-provider.browser.ts'),
            '#fs-source': src('./packages/nn/src/io/fs-source.browser.ts'),
            '#remote-store': src('./packages/nn/src/io/remote-store.browser.ts'),
            '#checkpoint-fs': src('./packages/trainer/src/store-fs.browser.ts'),
          },
        },
        test: {
          name: 'browser',
          include,
          exclude: ['**/*.node.test.ts'],
          setupFiles,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({ launchOptions: { executablePath: CHROMIUM_PATH, args: [...CHROMIUM_WEBGPU_ARGS] } }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
