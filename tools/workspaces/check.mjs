#!/usr/bin/env node
// The package graph check, run by `npm test` and by the build: exit 1, listing every problem, when
//   - an import crosses a forbidden edge (the client and the coordinator importing each other, privacy or
//     proto importing a side, a package importing a test), or does not resolve;
//   - a relative import leaves its package, or a file still sits where packages.mjs MOVES took it from
//     (run `node tools/workspaces/apply.mjs`);
//   - a package imports an npm or workspace package its package.json does not declare in `dependencies`,
//     or declares one it does not import (dependencies are exactly what the folder imports).
// `node tools/workspaces/check.mjs --root DIR` checks another tree (the test of this check uses it).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planImports } from './import-plan.mjs';
import { PACKAGES } from './packages.mjs';

const flag = process.argv.indexOf('--root');
const ROOT = flag > 0 ? resolve(process.argv[flag + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const plan = planImports(ROOT);
const problems = [...plan.errors];
for (const { from, to } of plan.moves) problems.push(`${from} belongs at ${to} (run node tools/workspaces/apply.mjs)`);
for (const [path, { origin, text }] of plan.rewrites) {
  if (origin === path && text !== readFileSync(join(ROOT, path), 'utf8')) {
    problems.push(`${path}: an import leaves its package by a relative path, or names its own package (run node tools/workspaces/apply.mjs)`);
  }
}

for (const pkg of PACKAGES) {
  const manifestPath = join(ROOT, pkg.dir, 'package.json');
  if (!existsSync(join(ROOT, pkg.dir))) continue;
  if (!existsSync(manifestPath)) {
    problems.push(`${pkg.dir}/ has no package.json (run node tools/workspaces/apply.mjs)`);
    continue;
  }
  const declared = new Set(Object.keys(JSON.parse(readFileSync(manifestPath, 'utf8')).dependencies ?? {}));
  const imported = new Set([...plan.npmDeps.get(pkg.dir), ...[...plan.workspaceDeps.get(pkg.dir)].map((dir) => PACKAGES.find((p) => p.dir === dir).name)]);
  for (const name of imported) if (pkg.refusedNpm?.includes(name)) problems.push(`${pkg.dir}/ imports ${name}, which ${pkg.name} must not depend on (packages.mjs refusedNpm)`);
  for (const name of imported) if (!declared.has(name)) problems.push(`${pkg.dir}/ imports ${name}, which ${pkg.name}'s package.json does not declare`);
  for (const name of declared) if (!imported.has(name)) problems.push(`${pkg.name} declares ${name}, which nothing in ${pkg.dir}/ imports`);
}

if (problems.length) {
  process.stderr.write(`package graph: ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
  process.exit(1);
}
