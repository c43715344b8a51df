// The package.json and tsconfig.json of every workspace package, and the root's, from the table in
// packages.mjs and the dependencies the import plan found. Versions of npm dependencies come from, in
// order: the exact pins of packages.mjs, any manifest of the workspace that already names the package
// (root or package), then the installed copy (as ^version).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEV_ONLY, PACKAGES, PINNED, ROOT_DIRS, VERSION } from './packages.mjs';

const readJson = (path) => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null);
const sorted = (object) => Object.fromEntries(Object.entries(object).sort(([a], [b]) => a.localeCompare(b)));

/** Known version ranges of npm packages, from every manifest of the workspace. */
export function knownVersions(root) {
  const known = new Map();
  const manifests = [readJson(join(root, 'package.json')), ...PACKAGES.map((p) => readJson(join(root, p.dir, 'package.json')))];
  for (const manifest of manifests.filter(Boolean)) {
    for (const field of ['dependencies', 'devDependencies', 'optionalDependencies']) {
      for (const [name, range] of Object.entries(manifest[field] ?? {})) if (!range.startsWith('file:') && !known.has(name)) known.set(name, range);
    }
  }
  return known;
}

function versionOf(root, known, name, errors, who) {
  if (PINNED[name]) return PINNED[name];
  if (known.has(name)) return known.get(name);
  const installed = readJson(join(root, 'node_modules', name, 'package.json'));
  if (installed) return `^${installed.version}`;
  errors.push(`${who} imports ${name}, which no manifest names and is not installed: npm install ${name} first`);
  return '*';
}

export function packageManifest(root, pkg, deps, known, errors, creatingIndex = false) {
  const hasIndex = creatingIndex || existsSync(join(root, pkg.dir, 'index.ts'));
  const exports = { './package.json': './package.json' };
  if (hasIndex) exports['.'] = { source: './index.ts', types: './dist/index.d.ts', default: './dist/index.js' };
  exports['./*'] = { source: './*.ts', types: './dist/*.d.ts', default: './dist/*.js' };
  const dependencies = {};
  for (const dir of deps.workspace) dependencies[PACKAGES.find((p) => p.dir === dir).name] = VERSION;
  for (const name of deps.npm) {
    if (DEV_ONLY.includes(name)) errors.push(`${pkg.dir}/ imports ${name}, a development tool: packages run without it`);
    else if (pkg.refusedNpm?.includes(name)) errors.push(`${pkg.dir}/ imports ${name}, which ${pkg.name} must not depend on (packages.mjs refusedNpm)`);
    else dependencies[name] = versionOf(root, known, name, errors, `${pkg.dir}/`);
  }
  const manifest = {
    name: pkg.name,
    version: VERSION,
    description: pkg.description,
    license: 'Apache-2.0',
    type: 'module',
    ...(pkg.publish === false ? { private: true } : {}),
    engines: { node: '>=20' },
    ...(pkg.bin ? { bin: pkg.bin } : {}),
    ...(hasIndex ? { types: './dist/index.d.ts' } : {}),
    exports,
    files: ['dist', ...(pkg.bin ? ['bin'] : [])],
    dependencies: sorted(dependencies),
  };
  const peers = {
    ...Object.fromEntries((pkg.optionalPeers ?? []).map((dir) => [PACKAGES.find((p) => p.dir === dir).name, VERSION])),
    ...(pkg.optionalNpmPeers ?? {}),
  };
  if (Object.keys(peers).length) {
    manifest.peerDependencies = sorted(peers);
    manifest.peerDependenciesMeta = sorted(Object.fromEntries(Object.keys(peers).map((name) => [name, { optional: true }])));
  }
  return manifest;
}

export function packageTsconfig(pkg, deps) {
  return {
    extends: '../tsconfig.base.json',
    compilerOptions: { composite: true, rootDir: '.', outDir: 'dist', tsBuildInfoFile: '.tsbuildinfo' },
    include: ['**/*.ts'],
    exclude: ['dist', 'node_modules'],
    references: [...deps.workspace].sort().map((dir) => ({ path: `../${dir}` })),
  };
}

const CHECK = 'node tools/workspaces/check.mjs';
const BUILD = 'node tools/workspaces/build.mjs';

/** The root's scripts, with the build (also as `prepare`) and the graph check first in `npm test`; other steps kept. */
function rootScripts(scripts) {
  const test = scripts.test ?? 'tsc --noEmit -p . && vitest run';
  return { ...scripts, build: BUILD, prepare: BUILD, test: test.includes(CHECK) ? test : `${CHECK} && ${test}` };
}

/** The private workspace root: no runtime dependencies of its own; dev tools and what tests import. */
export function rootManifest(root, present, rootNpm, packageNpm, known, errors) {
  const current = readJson(join(root, 'package.json'));
  const devDependencies = { ...(current.devDependencies ?? {}) };
  for (const name of ['typescript', 'tsx']) devDependencies[name] = versionOf(root, known, name, errors, 'the workspace root');
  for (const name of rootNpm) {
    if (!packageNpm.has(name) && !devDependencies[name] && !current.optionalDependencies?.[name]) devDependencies[name] = versionOf(root, known, name, errors, `${ROOT_DIRS.join('/, ')}/`);
  }
  for (const name of Object.keys(devDependencies)) {
    if ((packageNpm.has(name) && !DEV_ONLY.includes(name)) || current.optionalDependencies?.[name]) delete devDependencies[name];
  }
  const { dependencies: _runtime, bin: _bin, name: _name, version: _version, private: _private, workspaces: _workspaces, ...rest } = current;
  return {
    name: 'dpfed-workspace',
    version: VERSION,
    private: true,
    // the repository's own launcher (bin/dpfed.js runs the compiled dpfed package): `npx dpfed` in a checkout
    bin: { dpfed: 'bin/dpfed.js' },
    ...rest,
    workspaces: present.map((p) => p.dir),
    scripts: rootScripts(current.scripts ?? {}),
    devDependencies: sorted(devDependencies),
  };
}
