#!/usr/bin/env node
// The workspace codemod: turns the source tree into the npm workspaces of packages.mjs, and keeps it so.
//   node tools/workspaces/apply.mjs            apply (idempotent: a second run changes nothing)
//   node tools/workspaces/apply.mjs --check    change nothing; exit 1 if applying would change a file
//   --root DIR                                  work on another tree (the test of the codemod uses it)
// It moves the files of packages.mjs MOVES, rewrites every import that leaves its package into a package
// specifier (see import-plan.mjs), and writes each package's package.json (dependencies: exactly what the
// folder imports) and tsconfig.json (references: the workspace packages it imports), the root
// package.json (private workspace root) and tsconfig.build.json. An import across a forbidden edge stops
// it before anything is written, with every such import listed. Plain Node, no dependencies.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planImports } from './import-plan.mjs';
import { knownVersions, packageManifest, packageTsconfig, rootManifest } from './manifests.mjs';
import { PACKAGES, ROOT_DIRS } from './packages.mjs';

const flag = process.argv.indexOf('--root');
const ROOT = flag > 0 ? resolve(process.argv[flag + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const checkOnly = process.argv.includes('--check');

const SIMULATIONS_INDEX = `// @dpfed/simulations: privacy-budget simulations (sweeps over ε, rounds, institutions and dropouts).
// The package's public entry; its modules are exported from here as they are written.
export {};
`;

const plan = planImports(ROOT);
const known = knownVersions(ROOT);
const errors = [...plan.errors];
const writes = new Map(); // repo path -> text

const json = (value) => `${JSON.stringify(value, null, 2)}\n`;

// Packages whose folder exists or receives a moved file (simulations/ gets an empty package the first time).
const movedInto = new Set(plan.moves.map((m) => m.to.split('/')[0]));
const present = PACKAGES.filter((p) => p.dir === 'simulations' || movedInto.has(p.dir) || existsSync(join(ROOT, p.dir)));
if (!existsSync(join(ROOT, 'simulations', 'index.ts'))) writes.set('simulations/index.ts', SIMULATIONS_INDEX);

const packageNpm = new Set();
for (const pkg of present) {
  const deps = { workspace: plan.workspaceDeps.get(pkg.dir), npm: [...plan.npmDeps.get(pkg.dir)].sort() };
  const manifest = packageManifest(ROOT, pkg, deps, known, errors, writes.has(`${pkg.dir}/index.ts`));
  for (const name of Object.keys(manifest.dependencies)) packageNpm.add(name);
  writes.set(`${pkg.dir}/package.json`, json(manifest));
  writes.set(`${pkg.dir}/tsconfig.json`, json(packageTsconfig(pkg, deps)));
}
const rootNpm = new Set(ROOT_DIRS.flatMap((dir) => [...plan.npmDeps.get(dir)]));
writes.set('package.json', json(rootManifest(ROOT, present, rootNpm, packageNpm, known, errors)));
writes.set('tsconfig.build.json', json({
  // The compiled build (npm run build): every package, in dependency order.
  files: [],
  references: present.map((p) => ({ path: p.dir })),
}));

if (errors.length) {
  process.stderr.write(`workspaces: ${errors.length} problem(s); nothing was changed:\n${errors.map((e) => `  - ${e}`).join('\n')}\n`);
  process.exit(1);
}

const changed = [];
for (const { from, to } of plan.moves) changed.push(`move ${from} -> ${to}`);
for (const [path, { text }] of plan.rewrites) {
  const current = existsSync(join(ROOT, path)) ? readFileSync(join(ROOT, path), 'utf8') : null;
  if (current !== text) changed.push(`rewrite ${path}`);
}
for (const [path, text] of writes) {
  const current = existsSync(join(ROOT, path)) ? readFileSync(join(ROOT, path), 'utf8') : null;
  if (current !== text) changed.push(`write ${path}`);
  else writes.delete(path);
}

if (checkOnly) {
  if (changed.length) {
    process.stderr.write(`workspaces: the tree is not what tools/workspaces/apply.mjs makes of it (run it):\n${changed.map((c) => `  - ${c}`).join('\n')}\n`);
    process.exit(1);
  }
  process.exit(0);
}

for (const { from, to } of plan.moves) {
  mkdirSync(dirname(join(ROOT, to)), { recursive: true });
  renameSync(join(ROOT, from), join(ROOT, to));
}
for (const [path, { text }] of plan.rewrites) writeFileSync(join(ROOT, path), text);
for (const [path, text] of writes) {
  mkdirSync(dirname(join(ROOT, path)), { recursive: true });
  writeFileSync(join(ROOT, path), text);
}
process.stdout.write(changed.length ? `workspaces: ${changed.length} change(s):\n${changed.map((c) => `  - ${c}`).join('\n')}\n` : 'workspaces: nothing to change\n');
