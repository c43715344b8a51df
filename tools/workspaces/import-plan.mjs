// The codemod's plan, computed without touching the tree: which files move, how every import is written
// afterwards, what each package then depends on, and every import that crosses a forbidden edge.
//
// Rules, for an import in a file of folder F that names a module of folder G:
//   - G = F: a relative import ('./x.ts', '../strategies/y.ts'), left as written (re-pointed if a side moved);
//   - G another package that F may use (packages.mjs `mayUse`): the package specifier '<name>/<path>'
//     without the .ts extension ('@dpfed/proto/wire', '@dpfed/coordinator/strategies/fedavg');
//   - F a root folder (test, examples, tools): package specifiers for every package, relative inside F;
//   - anything else (the client importing the coordinator, privacy importing the client, a package
//     importing a test file, a relative import that does not resolve): an error naming file and import.
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { MOVES, PACKAGES, REDIRECTS, ROOT_DIRS } from './packages.mjs';
import { findImports, folderOf, isRelative, npmPackageName, packageOfDir, sourceFiles, workspaceSpecifier } from './source-files.mjs';

const EXTENSIONS = ['', '.ts', '.mjs', '.js'];

export function planImports(root) {
  const exists = (path) => existsSync(join(root, path));
  const moveOf = new Map(MOVES.map(([from, to]) => [from, to]));
  const moves = [];
  for (const [from, to] of MOVES) {
    if (exists(from) && exists(to)) throw new Error(`workspaces: both ${from} and ${to} exist; merge ${from} into ${to} by hand, delete it, and run again`);
    if (exists(from)) moves.push({ from, to });
  }
  const movedNow = new Map(moves.map((m) => [m.to, m.from]));
  // The tree after the moves: current files, with those that move under their new path.
  const files = sourceFiles(root).map((path) => moveOf.get(path) && movedNow.has(moveOf.get(path)) ? moveOf.get(path) : path);
  const present = new Set(files);
  const isFile = (path) => present.has(path) || (exists(path) && !moveOf.has(path));

  const errors = [];
  const rewrites = new Map(); // new path -> new text
  const workspaceDeps = new Map(PACKAGES.map((p) => [p.dir, new Set()]));
  const npmDeps = new Map([...PACKAGES.map((p) => p.dir), ...ROOT_DIRS].map((d) => [d, new Set()]));

  /** The module a specifier names, as a repo path after the moves, or null when it names none. */
  const target = (fromDir, specifier) => {
    let base;
    if (isRelative(specifier)) base = posix.normalize(posix.join(fromDir, specifier));
    else {
      const ws = workspaceSpecifier(specifier);
      if (!ws) return undefined; // an npm package or a builtin
      base = `${ws.pkg.dir}/${ws.sub}`;
    }
    for (const ext of EXTENSIONS) {
      const path = base + ext;
      if (moveOf.has(path)) return moveOf.get(path);
      if (isFile(path)) return path;
    }
    return null;
  };

  for (const path of files) {
    const origin = movedNow.get(path) ?? path; // where the text sits now
    const text = readFileSync(join(root, origin), 'utf8');
    const folder = folderOf(path);
    const pkg = packageOfDir(folder);
    let out = '';
    let last = 0;
    for (const imp of findImports(text)) {
      let to = target(posix.dirname(origin), imp.specifier);
      if (to === undefined) {
        const npm = npmPackageName(imp.specifier);
        if (npm) npmDeps.get(folder).add(npm);
        continue;
      }
      if (to === null) {
        errors.push(`${path}: import '${imp.specifier}' does not resolve to a file`);
        continue;
      }
      const redirect = REDIRECTS.find((r) => r.target === to && r.importers.includes(folder));
      if (redirect) to = redirect.to;
      const toFolder = folderOf(to);
      let written;
      if (toFolder === folder && !isRelative(imp.specifier) && !path.endsWith('.ts')) {
        written = imp.specifier; // a JavaScript entry (a package's bin/) imports its own package by name
      } else if (toFolder === folder) {
        written = posix.relative(posix.dirname(path), to);
        if (!written.startsWith('.')) written = `./${written}`;
      } else {
        const toPkg = packageOfDir(toFolder);
        if (!toPkg) {
          errors.push(`${path}: import '${imp.specifier}' reaches ${to}, which is in no package (${ROOT_DIRS.join(', ')} may import packages, never the reverse)`);
          continue;
        }
        if (pkg && !pkg.mayUse.includes(toFolder)) {
          const hint = toPkg.importHint ?? 'move what both need into proto/ or privacy/';
          errors.push(`${path}: import '${imp.specifier}' crosses a forbidden edge: ${pkg.name} (${folder}/) may not depend on ${toPkg.name} (${toFolder}/); ${hint}`);
          continue;
        }
        if (!to.endsWith('.ts')) {
          errors.push(`${path}: import '${imp.specifier}' names ${to} in another package; only TypeScript modules are exported`);
          continue;
        }
        const sub = to.slice(toFolder.length + 1, -'.ts'.length);
        written = sub === 'index' ? toPkg.name : `${toPkg.name}/${sub}`;
        if (pkg) workspaceDeps.get(folder).add(toFolder);
      }
      if (written !== imp.specifier) {
        out += text.slice(last, imp.start) + imp.quote + written + imp.quote;
        last = imp.end;
      }
    }
    if (last > 0 || origin !== path) rewrites.set(path, { origin, text: out + text.slice(last) });
  }
  return { moves, rewrites, errors, workspaceDeps, npmDeps };
}
