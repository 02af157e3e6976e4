#!/usr/bin/env node
/**
 * The published packages as users get them. Packs every non-private package under
 * packages/, checks each tarball with attw and publint, installs the tarballs into a
 * fresh project in a temporary directory (no workspace links; third-party dependencies
 * come from the registry), then there:
 *   - typechecks smoke.ts, the web page and every ```ts block of the packages' READMEs
 *     against the installed .d.ts files (skipLibCheck off, as a strict consumer);
 *   - runs smoke.ts and each README block in Node;
 *   - builds web/ with Vite and checks that the bundle took the `browser` code paths.
 * Expects the packages to be built (`npm run smoke:pack` builds first).
 *
 *   node tools/pack-smoke/run.mjs [--keep]     --keep leaves the temporary directory
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import ts from 'typescript';
import { build } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const bin = (name) => join(repo, 'node_modules/.bin', name);
const keep = process.argv.includes('--keep');
const requireGpu = process.env.CI === 'true' || process.env.CI === '1';

const t0 = performance.now();
const timings = [];
/** Runs `fn` as a named phase and records its duration. */
async function phase(name, fn) {
  const start = performance.now();
  console.log(`\n--- ${name}`);
  const result = await fn();
  timings.push([name, (performance.now() - start) / 1000]);
  return result;
}

/** Runs a command; throws with its output when it fails. Returns stdout. */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${basename(cmd)} ${args.join(' ')} (in ${options.cwd ?? repo}) exited with ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  }
  return r;
}

/** Dawn prints these limit notices on every device; they say nothing about the packages. */
const quiet = (text) =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^Warning: maxDynamic\w+ artificially reduced/.test(l))
    .join('\n');

const root = mkdtempSync(join(tmpdir(), 'webpeft-pack-'));
const tarballs = join(root, 'tarballs');
const consumer = join(root, 'consumer');
mkdirSync(tarballs);
let failed = false;
try {
  const packages = readdirSync(join(repo, 'packages'))
    .map((dir) => ({ dir: join(repo, 'packages', dir), manifest: JSON.parse(readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8')) }))
    .filter((p) => !p.manifest.private);
  if (packages.length === 0) throw new Error('no published package under packages/');

  const packed = await phase('npm pack', () => {
    for (const { dir, manifest } of packages) {
      for (const file of [manifest.main, manifest.types]) {
        if (!existsSync(join(dir, file))) throw new Error(`${manifest.name}: ${file} is missing; build first (npm run build)`);
      }
    }
    // One npm process for all packages: each npm start costs about a second.
    const workspaces = packages.flatMap(({ dir }) => ['--workspace', relative(repo, dir)]);
    const out = run('npm', ['pack', '--silent', '--json', '--pack-destination', tarballs, ...workspaces], { cwd: repo });
    return JSON.parse(out.stdout).map((info) => {
      const paths = new Set(info.files.map((f) => f.path));
      const tests = [...paths].filter((p) => p.includes('__tests__') || p.endsWith('.tsbuildinfo'));
      if (tests.length > 0) throw new Error(`${info.name}: the tarball holds test or build-state files: ${tests.join(', ')}`);
      // tsc -b never deletes outputs, so a renamed source leaves its old module in dist/.
      const stale = [...paths].filter((p) => /^dist\/.*\.js$/.test(p) && !paths.has(p.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')));
      if (stale.length > 0) throw new Error(`${info.name}: dist/ holds modules without a source (stale build output; rebuild from clean): ${stale.join(', ')}`);
      console.log(`${info.filename}: ${info.entryCount} files, ${(info.size / 1024).toFixed(1)} KiB packed, ${(info.unpackedSize / 1024).toFixed(1)} KiB unpacked`);
      return { name: info.name, tgz: join(tarballs, info.filename) };
    });
  });

  await phase('attw + publint', () => {
    for (const { name, tgz } of packed) {
      // ESM-only packages: a CommonJS `require` (node16-cjs) or node10 resolution cannot
      // load them, and the esm-only profile leaves exactly those resolutions out.
      const attw = spawnSync(bin('attw'), ['--no-definitely-typed', '--profile', 'esm-only', '--format', 'json', tgz], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (attw.status !== 0) {
        const readable = spawnSync(bin('attw'), ['--no-definitely-typed', '--profile', 'esm-only', '--no-color', '--format', 'ascii', tgz], { encoding: 'utf8' });
        throw new Error(`attw found problems in ${name}:\n${readable.stdout}${readable.stderr}`);
      }
      const ignored = Object.values(JSON.parse(attw.stdout).problems).flat().map((p) => `${p.kind}@${p.resolutionKind ?? '?'}`);
      console.log(`attw ${name}: ok (esm-only profile${ignored.length ? `; outside it: ${[...new Set(ignored)].join(', ')}` : ''})`);
      const publint = run(bin('publint'), ['run', '--strict', tgz], { env: { ...process.env, NO_COLOR: '1' } });
      // eslint-disable-next-line no-control-regex -- strips terminal colours
      const verdict = publint.stdout.replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n').at(-1);
      console.log(`publint ${name}: ${verdict}`);
    }
  });

  await phase('npm install (fresh project)', () => {
    mkdirSync(consumer, { recursive: true });
    const rootManifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
    const manifest = {
      name: 'webpeft-pack-smoke',
      private: true,
      type: 'module',
      dependencies: Object.fromEntries(packed.map(({ name, tgz }) => [name, `file:${relative(consumer, tgz)}`])),
      // For typechecking smoke.ts (node:fs); the repository's version keeps the npm cache warm.
      devDependencies: { '@types/node': rootManifest.devDependencies['@types/node'] },
    };
    writeFileSync(join(consumer, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: consumer });
    for (const { name } of packed) {
      const dir = join(consumer, 'node_modules', name);
      if (lstatSync(dir).isSymbolicLink()) throw new Error(`${name} is installed as a link, not from its tarball`);
    }
    const installed = readdirSync(join(consumer, 'node_modules'), { withFileTypes: true }).flatMap((d) =>
      d.name.startsWith('@') ? readdirSync(join(consumer, 'node_modules', d.name)).map((n) => `${d.name}/${n}`) : [d.name],
    );
    console.log(`installed: ${installed.filter((n) => !n.startsWith('.')).sort().join(', ')}`);
  });

  const snippets = await phase('README snippets', () => {
    const dir = join(consumer, 'snippets');
    mkdirSync(dir);
    const found = [];
    for (const { dir: pkgDir, manifest } of packages) {
      const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
      const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
      if (blocks.length === 0) throw new Error(`${manifest.name}: README.md has no \`\`\`ts example to run`);
      const install = `npm install ${manifest.name}`;
      if (!readme.includes(install)) throw new Error(`${manifest.name}: README.md does not show \`${install}\``);
      blocks.forEach((code, i) => {
        const file = join(dir, `${basename(pkgDir)}-${i + 1}.ts`);
        writeFileSync(file, code);
        found.push(file);
      });
    }
    console.log(`${found.length} blocks: ${found.map((f) => basename(f)).join(', ')}`);
    return found;
  });

  await phase('typecheck (installed .d.ts)', () => {
    cpSync(join(here, 'smoke.ts'), join(consumer, 'smoke.ts'));
    cpSync(join(here, 'tsconfig.json'), join(consumer, 'tsconfig.json'));
    cpSync(join(here, 'web'), join(consumer, 'web'), { recursive: true });
    run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(consumer, 'tsconfig.json')], { cwd: consumer });
    console.log('tsc --noEmit (strict, skipLibCheck false): ok');
  });

  await phase('node', () => {
    /** TypeScript to runnable ESM next to the source (types only need erasing). */
    const transpile = (file) => {
      const out = file.replace(/\.ts$/, '.mjs');
      const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        fileName: file,
      });
      writeFileSync(out, outputText);
      return out;
    };
    const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir() };
    const adapterDir = join(consumer, 'adapter');
    const smoke = run(process.execPath, [transpile(join(consumer, 'smoke.ts')), adapterDir], { cwd: consumer, env });
    console.log(quiet(smoke.stdout + smoke.stderr));
    const gpu = !smoke.stdout.includes('using the cpu backend');
    for (const file of snippets) {
      // Each block runs in its own empty directory, so the files it writes stay apart.
      const cwd = join(consumer, 'work', basename(file, '.ts'));
      mkdirSync(cwd, { recursive: true });
      const r = spawnSync(process.execPath, [transpile(file)], { cwd, env, encoding: 'utf8', timeout: 60_000 });
      const output = quiet(r.stdout + r.stderr);
      if (r.status !== 0 && !gpu && !requireGpu && output.includes('NoAdapterError')) {
        console.log(`${basename(file)}: not run, no WebGPU adapter (README examples call init())`);
        continue;
      }
      if (r.status !== 0) throw new Error(`README block ${relative(consumer, file)} exited with ${r.status ?? r.signal}:\n${readFileSync(file, 'utf8')}\n${output}`);
      const written = readdirSync(cwd);
      console.log(`${basename(file)}: ok${written.length ? ` (wrote ${written.join(', ')})` : ''}`);
      for (const line of output.split('\n').filter(Boolean)) console.log(`  | ${line}`);
    }
  });

  await phase('vite build (browser)', async () => {
    const outDir = join(consumer, 'web-dist');
    const result = await build({
      root: join(consumer, 'web'),
      configFile: false,
      logLevel: 'warn',
      build: { outDir, emptyOutDir: true, reportCompressedSize: false },
    });
    const chunks = [result].flat().flatMap((r) => r.output).filter((o) => o.type === 'chunk');
    const ids = chunks.flatMap((c) => c.moduleIds);
    const code = chunks.map((c) => c.code).join('\n');
    const within = (id) => relative(join(consumer, 'node_modules'), id);
    for (const { name } of packed) {
      if (!ids.some((id) => within(id).startsWith(`${name}/`))) throw new Error(`the bundle holds no module of ${name}: the page's use of it was tree-shaken away`);
    }
    const mustHave = ['@webpeft/tensor/dist/backends/webgpu/gpu-provider.browser.js', '@webpeft/nn/dist/io/fs-source.browser.js'];
    for (const want of mustHave) {
      if (!ids.some((id) => within(id) === want)) throw new Error(`the bundle lacks ${want}: the \`browser\` import condition was not applied`);
    }
    const nodeOnly = ids.filter((id) => /\.node\.js$/.test(id) || within(id).startsWith('webgpu/') || id.startsWith('node:') || id.includes('__vite-browser-external'));
    if (nodeOnly.length > 0) throw new Error(`the browser bundle holds Node-only modules:\n${nodeOnly.join('\n')}`);
    const nodeImport = code.match(/\b(?:from|import|require)\s*\(?\s*["']node:[\w/]+["']/);
    if (nodeImport) throw new Error(`the browser bundle imports a Node built-in: ${nodeImport[0]}`);
    const bytes = Buffer.byteLength(code);
    const perPackage = packed.map(({ name }) => `${name.replace('@webpeft/', '')} ${ids.filter((id) => within(id).startsWith(`${name}/`)).length}`);
    console.log(`bundle: ${chunks.length} chunk(s), ${(bytes / 1024).toFixed(1)} KiB, ${(gzipSync(code).length / 1024).toFixed(1)} KiB gzip, ${ids.length} modules (${perPackage.join(', ')})`);
    console.log('browser conditions: gpu-provider.browser.js and fs-source.browser.js bundled; no node: imports, no webgpu (Dawn) package');
  });
} catch (e) {
  failed = true;
  console.error(`\npack smoke FAILED: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (keep) console.log(`\nkept ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

console.log(`\n--- times (total ${((performance.now() - t0) / 1000).toFixed(1)}s)`);
for (const [name, s] of timings) console.log(`  ${name.padEnd(30)} ${s.toFixed(1)}s`);
process.exit(failed ? 1 : 0);
