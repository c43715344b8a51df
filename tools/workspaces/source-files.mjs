// Finding the workspace's source files and the module specifiers they import, for apply.mjs and check.mjs.
// A specifier is found in `from '…'` of an import or export statement, `import '…'` and `import('…')` (also inside `typeof import('…')`);
// lines that are comments are skipped, so an example in a comment is never read as an import.
import { readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, sep } from 'node:path';
import { PACKAGES, ROOT_DIRS } from './packages.mjs';

const SOURCE = /\.(ts|mts|mjs|js)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git']);
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])([^'"\n]+)\2/g;
/** A line whose `from '…'` is an import or export clause (not the word "from" in a message) starts so... */
const STATEMENT = /^(import|export)\b|^\}/;
/** ...and ends after the specifier (an import attribute, a semicolon or a comment may follow). */
const STATEMENT_END = /^\s*(with\s*\{[^}]*\}\s*)?;?\s*(\/\/.*)?$/;

/** Every source file (repo-relative, forward slashes) under the package folders and the root folders. */
export function sourceFiles(root) {
  const out = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(join(root, dir));
    } catch {
      return;
    }
    for (const name of entries) {
      const rel = dir ? `${dir}/${name}` : name;
      if (statSync(join(root, rel)).isDirectory()) {
        if (!SKIP_DIRS.has(name)) walk(rel);
      } else if (SOURCE.test(name) && !name.endsWith('.d.ts')) out.push(rel);
    }
  };
  for (const dir of [...PACKAGES.map((p) => p.dir), ...ROOT_DIRS]) walk(dir);
  return out.sort();
}

/** Each import in `text`: the specifier, and where its quotes start and end. */
export function findImports(text) {
  const found = [];
  let offset = 0;
  for (const line of text.split('\n')) {
    const trimmed = line.trimStart();
    if (!(trimmed.startsWith('//') || trimmed.startsWith('*') || trimmed.startsWith('/*'))) {
      for (const m of line.matchAll(SPECIFIER)) {
        const rest = line.slice(m.index + m[0].length);
        const kind = m[1].startsWith('from') ? 'from' : m[1].includes('(') ? 'dynamic' : 'side-effect';
        if (kind === 'from' && !(STATEMENT.test(trimmed) && STATEMENT_END.test(rest))) continue;
        if (kind === 'side-effect' && !STATEMENT_END.test(rest)) continue;
        const start = offset + m.index + m[1].length;
        found.push({ specifier: m[3], start, end: start + m[3].length + 2, quote: m[2] });
      }
    }
    offset += line.length + 1;
  }
  return found;
}

/** The folder (first path segment) a repo-relative path lies in. */
export function folderOf(path) {
  return path.split('/')[0];
}

export function packageOfDir(dir) {
  return PACKAGES.find((p) => p.dir === dir);
}

export function packageNamed(name) {
  return PACKAGES.find((p) => p.name === name);
}

/** For a bare specifier: the npm package it names ('@scope/name' or 'name'), or null for a Node builtin. */
export function npmPackageName(specifier) {
  if (specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0])) return null;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

export function isRelative(specifier) {
  return specifier.startsWith('./') || specifier.startsWith('../');
}

/** A workspace package specifier ('@dpfed/proto/wire', 'dpfed/run-flags') as { pkg, sub }, else null. */
export function workspaceSpecifier(specifier) {
  for (const pkg of PACKAGES) {
    if (specifier === pkg.name) return { pkg, sub: 'index' };
    if (specifier.startsWith(`${pkg.name}/`)) return { pkg, sub: specifier.slice(pkg.name.length + 1) };
  }
  return null;
}

export function toPosix(path) {
  return path.split(sep).join('/');
}

export function repoRelative(root, absolute) {
  return toPosix(relative(root, absolute));
}
