// @ts-check
// Fails when a TypeScript or JavaScript file of the repository belongs to no project of
// the typecheck (`tsc -b tsconfig.json`), so a new test, example or script cannot escape
// it silently. Run by `npm run typecheck` after tsc.
//
//   node tools/check-all-typechecked.mjs
//
// It follows the project references of the root tsconfig.json, asks the TypeScript
// compiler which files each project includes, and compares that set with every source
// file found on disk outside dependency, build and cache folders.
import { readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const sourceFile = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;
/** Folders that hold dependencies, build outputs or caches, never sources. */
const skipped = new Set(['node_modules', 'dist', '.git', '.nx', 'docs-site', 'coverage', '.cache', '.vitest-attachments']);
/** Root-level only: the output folder of local runs (ignored by git too). */
const skippedAtRoot = new Set(['out']);

/**
 * Absolute paths of the files of a tsconfig and, recursively, of the projects it references.
 * @param {string} configPath absolute path of a tsconfig file
 * @param {Set<string>} seen configs already visited
 * @param {Set<string>} files collected file names
 */
function collect(configPath, seen, files) {
  if (seen.has(configPath)) return;
  seen.add(configPath);
  /** @type {ts.ParseConfigFileHost} */
  const host = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(`${relative(root, configPath)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    },
  };
  const parsed = ts.getParsedCommandLineOfConfigFile(configPath, undefined, host);
  if (!parsed) throw new Error(`cannot read ${relative(root, configPath)}`);
  for (const f of parsed.fileNames) files.add(resolve(f));
  for (const ref of parsed.projectReferences ?? []) collect(ts.resolveProjectReferencePath(ref), seen, files);
}

/**
 * Source files on disk under `dir`, skipping dependency, build and cache folders.
 * @param {string} dir
 * @param {string[]} out
 * @returns {string[]}
 */
function walk(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (skipped.has(entry.name) || entry.name.startsWith('.venv')) continue;
      if (dir === root && skippedAtRoot.has(entry.name)) continue;
      walk(path, out);
    } else if (entry.isFile() && sourceFile.test(entry.name)) {
      out.push(path);
    }
  }
  return out;
}

/** @type {Set<string>} */
const typechecked = new Set();
/** @type {Set<string>} */
const projects = new Set();
collect(join(root, 'tsconfig.json'), projects, typechecked);
const missing = walk(root).filter((f) => !typechecked.has(f));
if (missing.length > 0) {
  console.error(`${missing.length} source file(s) belong to no project of tsconfig.json (add them to a tsconfig it references):`);
  for (const f of missing) console.error(`  ${relative(root, f).split(sep).join('/')}`);
  process.exit(1);
}
console.log(`all ${walk(root).length} source files are typechecked (${projects.size} tsconfig files)`);
