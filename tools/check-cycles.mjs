// @ts-check
// Finds import cycles among the source files of every package and example, and fails
// on any cycle that tools/cycles-allowed.txt does not name. Run by `npm run check:cycles`
// (a step of .ci/run).
//
//   node tools/check-cycles.mjs            check (exit 1 on a new or a stale entry)
//   node tools/check-cycles.mjs --all      also print the allowed cycles in full
//
// What counts as an edge: every static `import ... from`, `import '...'` and
// `export ... from` of a relative path or of a `#name` package import (resolved through
// the package's `imports` map to all its src targets). `import type` and `export type`
// are not edges: verbatimModuleSyntax guarantees they are erased from the emitted
// JavaScript, so they can never change module evaluation order, which is what a cycle
// breaks (a class read before its module ran). `import { type A }` IS an edge: it stays
// in the output as `import {} from`, which still loads the module. Dynamic `import()` is
// not an edge: it runs after every static import has been evaluated. Imports of other
// packages are not edges: package references are acyclic (tsc -b rejects a cycle).
//
// The allow-list, tools/cycles-allowed.txt, names the cycles known when this check was
// added, one strongly connected group per line (its files, space separated). A group
// found on disk passes when all its files are on one allowed line. A line that matches
// no group is stale and fails the check too, so whoever removes a cycle deletes its line;
// the file is meant to shrink to empty.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const allowFile = join(root, 'tools', 'cycles-allowed.txt');
const showAll = process.argv.includes('--all');

/** @param {string} p absolute path @returns {string} repository-relative, forward slashes */
const rel = (p) => relative(root, p).split(sep).join('/');

/**
 * TypeScript sources under `dir`, skipping dependency and build folders.
 * @param {string} dir
 * @param {string[]} out
 * @returns {string[]}
 */
function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist' && !entry.name.startsWith('.')) walk(path, out);
    } else if (entry.isFile() && /\.(ts|tsx|mts|cts)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
      out.push(path);
    }
  }
  return out;
}

/** @param {string} dir @returns {string[]} sub-folders of `dir` */
const subdirs = (dir) =>
  existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name)) : [];

/** Package (or example) roots: folders with a package.json. */
const projectRoots = [...subdirs(join(root, 'packages')), ...subdirs(join(root, 'examples'))].filter((d) => existsSync(join(d, 'package.json')));

/**
 * Resolves a relative specifier as NodeNext does for our sources: `./x.js` is `./x.ts`.
 * @param {string} from absolute path of the importing file
 * @param {string} spec
 * @returns {string | null}
 */
function resolveRelative(from, spec) {
  const base = resolve(dirname(from), spec);
  const stem = base.replace(/\.(m|c)?js$/, '');
  for (const candidate of [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.cts`, join(base, 'index.ts')]) {
    if (/\.(ts|tsx|mts|cts)$/.test(candidate) && existsSync(candidate)) return candidate;
  }
  return null;
}

/** @param {string} path @returns {unknown} the parsed JSON file */
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/**
 * Every source target of a `#name` import in the package.json `imports` map of `pkgRoot`
 * (all conditions: each runtime's variant is a possible edge). `./dist/a.js` maps to `./src/a.ts`.
 * @param {string} pkgRoot
 * @param {string} spec
 * @returns {string[]}
 */
function resolveHash(pkgRoot, spec) {
  const pkg = /** @type {{ imports?: Record<string, unknown> }} */ (readJson(join(pkgRoot, 'package.json')));
  /** @type {string[]} */
  const targets = [];
  /** @param {unknown} v */
  const visit = (v) => {
    if (typeof v === 'string') targets.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(pkg.imports?.[spec]);
  return [
    ...new Set(
      targets
        .filter((t) => !t.endsWith('.d.ts'))
        .map((t) => join(pkgRoot, t.replace(/^\.\/dist\//, './src/').replace(/\.js$/, '.ts')))
        .filter((t) => existsSync(t)),
    ),
  ];
}

/**
 * Module specifiers of the static imports and re-exports that survive compilation.
 * @param {string} file
 * @returns {string[]}
 */
function runtimeSpecifiers(file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false);
  /** @type {string[]} */
  const specs = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      if (st.importClause?.isTypeOnly) continue;
      specs.push(st.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      if (st.isTypeOnly) continue;
      specs.push(st.moduleSpecifier.text);
    }
  }
  return specs;
}

// The import graph.
/** @type {Map<string, string[]>} */
const graph = new Map();
for (const pkgRoot of projectRoots) {
  for (const file of walk(pkgRoot)) {
    /** @type {string[]} */
    const deps = [];
    for (const spec of runtimeSpecifiers(file)) {
      if (spec.startsWith('.')) {
        const target = resolveRelative(file, spec);
        if (target) deps.push(target);
      } else if (spec.startsWith('#')) {
        deps.push(...resolveHash(pkgRoot, spec));
      }
    }
    graph.set(file, deps);
  }
}

// Strongly connected components (Tarjan, iterative so deep chains cannot overflow the stack).
/** @type {string[][]} */
const groups = [];
{
  let counter = 0;
  /** @type {Map<string, number>} */
  const index = new Map();
  /** @type {Map<string, number>} */
  const low = new Map();
  /** @type {string[]} */
  const stack = [];
  const onStack = new Set();
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    /** @type {Array<{ node: string, next: number }>} */
    const work = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const deps = graph.get(frame.node) ?? [];
      if (frame.next < deps.length) {
        const dep = deps[frame.next++];
        if (!graph.has(dep)) continue;
        if (!index.has(dep)) {
          index.set(dep, counter);
          low.set(dep, counter++);
          stack.push(dep);
          onStack.add(dep);
          work.push({ node: dep, next: 0 });
        } else if (onStack.has(dep)) {
          low.set(frame.node, Math.min(/** @type {number} */ (low.get(frame.node)), /** @type {number} */ (index.get(dep))));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(/** @type {number} */ (low.get(parent)), /** @type {number} */ (low.get(frame.node))));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        /** @type {string[]} */
        const group = [];
        let n;
        do {
          n = /** @type {string} */ (stack.pop());
          onStack.delete(n);
          group.push(n);
        } while (n !== frame.node);
        const selfLoop = (graph.get(frame.node) ?? []).includes(frame.node);
        if (group.length > 1 || selfLoop) groups.push(group.map(rel).sort());
      }
    }
  }
}

/**
 * One shortest cycle through the first file of a group, for the report.
 * @param {string[]} group repository-relative files
 * @returns {string[]}
 */
function exampleCycle(group) {
  const members = new Set(group);
  const start = group[0];
  /** @type {Map<string, string>} */
  const parent = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const n = /** @type {string} */ (queue.shift());
    for (const depAbs of graph.get(join(root, n)) ?? []) {
      const dep = rel(depAbs);
      if (!members.has(dep)) continue;
      if (dep === start) {
        const path = [n];
        while (path[0] !== start) path.unshift(/** @type {string} */ (parent.get(path[0])));
        return [...path, start];
      }
      if (!parent.has(dep)) {
        parent.set(dep, n);
        queue.push(dep);
      }
    }
  }
  return group;
}

// The allow-list: one group per line, `#` comments.
const allowed = existsSync(allowFile)
  ? readFileSync(allowFile, 'utf8')
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l.length > 0)
      .map((l) => new Set(l.split(/\s+/)))
  : [];

const used = new Set();
let failed = false;
let allowedCount = 0;
for (const group of groups.sort((a, b) => a[0].localeCompare(b[0]))) {
  const match = allowed.findIndex((a) => group.every((f) => a.has(f)));
  const cycle = exampleCycle(group).join(' -> ');
  if (match >= 0) {
    used.add(match);
    allowedCount++;
    if (showAll) console.log(`allowed cycle (${group.length} files): ${cycle}`);
  } else {
    failed = true;
    console.error(`import cycle (${group.length} files): ${cycle}`);
    if (group.length > 2) console.error(`  all files of the cycle group: ${group.join(' ')}`);
  }
}
allowed.forEach((a, i) => {
  if (used.has(i)) return;
  failed = true;
  console.error(`stale entry in tools/cycles-allowed.txt (no such cycle any more, delete the line): ${[...a].join(' ')}`);
});
console.log(`${graph.size} files, ${groups.length} import cycle group(s), ${allowedCount} on the allow-list`);
if (failed) {
  console.error('Break the cycle (move the shared part to its own module, or make a type-only import `import type`), or, for a known one being removed, list it in tools/cycles-allowed.txt.');
  process.exit(1);
}
