// The Dockerfile and its build context. No Docker engine runs where these tests run, so the image is not
// built; instead:
// - the Dockerfile is linted (dockerfile-utils, the linter behind the VS Code Docker extension, with every
//   optional rule turned to an error) and its stages are checked against what the deployment relies on
//   (final targets, non-root user, the launcher with cli/node-heap.ts's flags, stage references, the
//   tfjs-node-gpu version the lockfile pins);
// - the build context that .dockerignore leaves is copied to a temporary folder laid out as in the image
//   (/opt/dpfed for the application, another folder as the working directory) and the `dpfed` command is
//   run from it, with the image's entrypoint flags: every subcommand must load;
// - with DPFED_TEST_IMAGE_INSTALL=1, the dependency stage's `npm ci` runs for real on a copy of
//   package.json and package-lock.json (about a minute of native compilation for better-sqlite3, so it
//   is opt-in) and the command runs on what it installed, without devDependencies.
import { execFile, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DockerfileParser, type Copy, type Instruction } from 'dockerfile-ast';
import { validate, ValidationSeverity } from 'dockerfile-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_HEAP_FLAGS } from 'dpfed/node-heap';

// A CommonJS module whose typings declare an ES default export: loaded through require, typed by them.
const dockerignore: typeof import('@balena/dockerignore').default = createRequire(import.meta.url)('@balena/dockerignore');
const ROOT = path.resolve(import.meta.dirname, '..');
const DOCKERFILE = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const ENTRYPOINT = ['node', ...NODE_HEAP_FLAGS, '/opt/dpfed/bin/dpfed.js'];
const SUBCOMMANDS = ['coordinator', 'client', 'demo', 'privacy', 'ledger', 'bench'];

type Stage = { name: string; from: string; instructions: Instruction[] };

function stages(): Stage[] {
  const dockerfile = DockerfileParser.parse(DOCKERFILE);
  const out: Stage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const args = instruction.getArguments().map((a) => a.getValue());
      expect(args.length === 3 && args[1].toUpperCase() === 'AS', `FROM ${args.join(' ')} names its stage`).toBe(true);
      out.push({ name: args[2], from: args[0], instructions: [] });
    } else out.at(-1)?.instructions.push(instruction);
  }
  return out;
}

/** Default values of the ARGs declared before the first FROM. */
function globalArgs(): Record<string, string> {
  const values: Record<string, string> = {};
  for (const arg of DockerfileParser.parse(DOCKERFILE).getInitialARGs()) {
    const p = arg.getProperty();
    if (p) values[p.getName()] = p.getValue() ?? '';
  }
  return values;
}

const keyword = (s: Stage, k: string) => s.instructions.filter((i) => i.getKeyword() === k);
/** A COPY's --from value (the parser keeps flags out of the arguments). */
const copyFrom = (i: Instruction) => (i as Copy).getFromFlag()?.getValue() ?? undefined;
const runCommands = (s: Stage) =>
  keyword(s, 'RUN').flatMap((i) =>
    (i.getRawArgumentsContent() ?? '')
      .replace(/\\\r?\n/g, ' ')
      .split('&&')
      .map((c) => c.trim().replace(/\s+/g, ' ')),
  );
const resolveImage = (from: string) => from.replace(/^\$\{(\w+)\}$/, (_, name: string) => globalArgs()[name] ?? from);

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

/** Copies the files .dockerignore lets into the build context to DIR (the image's /opt/dpfed). */
function copyBuildContext(dir: string): string[] {
  const ignore = dockerignore().add(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n'));
  const copied: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (ignore.ignores(entry.isDirectory() ? `${child}/` : child)) continue;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) {
        fs.mkdirSync(path.join(dir, rel), { recursive: true });
        fs.copyFileSync(path.join(ROOT, child), path.join(dir, child));
        copied.push(child);
      }
    }
  };
  walk('');
  return copied;
}

/** Runs the image's entrypoint with ARGS, APP standing in for /opt/dpfed, in a fresh working directory. */
function runEntrypoint(app: string, args: string[]) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dpfed-image-work-'));
  temps.push(work);
  const argv = ENTRYPOINT.slice(1).map((a) => a.replace('/opt/dpfed', app));
  // as in the image: the compiled packages, without the tests' NODE_OPTIONS (tsx and the "source" condition)
  const { NODE_OPTIONS: _tests, ...env } = process.env;
  return spawnSync(ENTRYPOINT[0], [...argv, ...args], { cwd: work, encoding: 'utf8', timeout: 60_000, env: { ...env, NODE_ENV: 'production' } });
}

function checkCommandRuns(app: string) {
  const top = runEntrypoint(app, ['--help']);
  expect(top.status, top.stderr).toBe(0);
  for (const name of SUBCOMMANDS) expect(top.stdout).toContain(name);
  for (const name of SUBCOMMANDS) {
    const r = runEntrypoint(app, [name, '--help']);
    expect(r.status, `${name} --help: ${r.stderr}`).toBe(0);
    expect(r.stdout.length, name).toBeGreaterThan(0);
  }
  // a real computation through the accountant: loads privacy/ and prints a number
  const eps = runEntrypoint(app, ['privacy', 'epsilon', '--event', '0.01:1.1:1000', '--delta', '1e-5', '--json']);
  expect(eps.status, eps.stderr).toBe(0);
  expect(JSON.stringify(JSON.parse(eps.stdout))).toMatch(/"epsilon":\d/);
}

describe('Dockerfile', () => {
  it('passes the dockerfile-utils linter with every rule set to error', () => {
    const all = ValidationSeverity.ERROR;
    const diagnostics = validate(DOCKERFILE, {
      deprecatedMaintainer: all,
      directiveCasing: all,
      emptyContinuationLine: all,
      instructionCasing: all,
      instructionCmdMultiple: all,
      instructionEntrypointMultiple: all,
      instructionHealthcheckMultiple: all,
      instructionJSONInSingleQuotes: all,
      instructionWorkdirRelative: all,
    });
    expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
    // the linter does find faults: the same rules on a broken file
    expect(validate('FROM node:20 AS a\nMAINTAINER x\nEXPOSE abc\nWORKDIR app\n', { deprecatedMaintainer: all, instructionWorkdirRelative: all }).length).toBeGreaterThanOrEqual(3);
  });

  it('builds a wasm image (the default target) and a tensorflow-gpu image, both non-root with the launcher and its heap flag', () => {
    const all = stages();
    const byName = new Map(all.map((s) => [s.name, s]));
    expect(all.at(-1)!.name).toBe('wasm');
    expect(resolveImage(byName.get('wasm')!.from)).toMatch(/^node:20[-.]/);
    expect(resolveImage(byName.get('tensorflow-gpu')!.from)).toMatch(/^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-/);
    for (const name of ['wasm', 'tensorflow-gpu']) {
      const stage = byName.get(name)!;
      const user = keyword(stage, 'USER').at(-1)?.getArgumentsContent();
      expect(user, name).toBe('10001:10001');
      const entrypoint = keyword(stage, 'ENTRYPOINT');
      expect(entrypoint).toHaveLength(1);
      expect(JSON.parse(entrypoint[0].getRawArgumentsContent()!), name).toEqual(ENTRYPOINT);
      // the application comes from the build context and production dependencies from a deps stage
      const copies = keyword(stage, 'COPY').map((c) => [copyFrom(c), c.getArgumentsContent()]);
      expect(copies).toContainEqual([undefined, '. ./']);
      expect(copies, name).toContainEqual([name === 'wasm' ? 'wasm-deps' : 'gpu-deps', '/opt/dpfed/node_modules ./node_modules']);
      // and the compiled packages (every package's dist/) from the build stage
      expect(copies, name).toContainEqual(['build', '/opt/built/ ./']);
      // no compiler in a final image
      expect(runCommands(stage).join(' ')).not.toMatch(/g\+\+|build-essential/);
    }
  });

  it('every COPY --from names an earlier stage; the deps stages install production dependencies with npm ci', () => {
    const all = stages();
    let references = 0;
    all.forEach((stage, index) => {
      for (const copy of keyword(stage, 'COPY')) {
        const from = copyFrom(copy);
        if (from === undefined) continue;
        references++;
        expect(
          all.slice(0, index).map((s) => s.name),
          `${stage.name}: COPY --from=${from}`,
        ).toContain(from);
      }
    });
    expect(references).toBe(7);
    const wasmDeps = runCommands(all.find((s) => s.name === 'wasm-deps')!);
    expect(wasmDeps).toContain('npm ci --omit=dev --omit=optional --no-audit --no-fund');
    const gpuDeps = runCommands(all.find((s) => s.name === 'gpu-deps')!);
    expect(gpuDeps).toContain('npm ci --omit=dev --no-audit --no-fund');
    expect(gpuDeps).toContain('rm -rf node_modules/@tensorflow/tfjs-node');
    // the GPU build checks that it installed the tfjs-node-gpu version package-lock.json pins
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
    expect(globalArgs().TFJS_NODE_GPU_VERSION).toBe(lock.packages['node_modules/@tensorflow/tfjs-node-gpu'].version);
  });

  it('the build context has what `dpfed` runs from and no tests, databases, identities or keys', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpfed-context-list-'));
    temps.push(dir);
    const files = copyBuildContext(dir);
    expect(files).toContain('bin/dpfed.js');
    expect(files).toContain('package-lock.json');
    expect(files.some((f) => f.startsWith('data/') && f.endsWith('.csv'))).toBe(true);
    expect(files.filter((f) => /^(test|node_modules|\.git|deploy|scratch)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\.(sqlite|identity|coordinator-key|key|pem)$/.test(f))).toEqual([]);
  });

  it('from that context, laid out as in the image, the entrypoint runs every dpfed subcommand', () => {
    const app = fs.mkdtempSync(path.join(os.tmpdir(), 'dpfed-image-app-'));
    temps.push(app);
    copyBuildContext(app);
    // stands in for the deps stage's node_modules; its workspace links lead to this repository's packages,
    // whose dist/ (built here, incremental) stands in for the build stage's
    spawnSync(process.execPath, ['tools/workspaces/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'), 'dir');
    checkCommandRuns(app);
  });

  it.skipIf(process.env.DPFED_TEST_IMAGE_INSTALL !== '1')(
    "the wasm deps stage's npm ci installs what the command needs, without devDependencies",
    async () => {
      const app = fs.mkdtempSync(path.join(os.tmpdir(), 'dpfed-image-install-'));
      temps.push(app);
      // the deps stage installs in a copy of the build context (the workspace packages' folders come along)
      copyBuildContext(app);
      const npmCi = runCommands(stages().find((s) => s.name === 'wasm-deps')!).find((c) => c.startsWith('npm ci'))!;
      // asynchronous, so the test worker keeps answering vitest during the minute or more it takes
      await promisify(execFile)('sh', ['-c', `${npmCi} --prefer-offline`], { cwd: app, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
      expect(fs.existsSync(path.join(app, 'node_modules', 'vitest'))).toBe(false);
      expect(fs.existsSync(path.join(app, 'node_modules', '@tensorflow', 'tfjs-node'))).toBe(false);
      expect(fs.existsSync(path.join(app, 'node_modules', 'typescript'))).toBe(false);
      // the build stage's compiled packages (this repository's, built by npm install)
      for (const entry of fs.readdirSync(ROOT, { withFileTypes: true })) {
        const dist = path.join(ROOT, entry.name, 'dist');
        if (entry.isDirectory() && entry.name !== 'node_modules' && fs.existsSync(dist)) fs.cpSync(dist, path.join(app, entry.name, 'dist'), { recursive: true });
      }
      checkCommandRuns(app);
      const sqlite = spawnSync('node', ['-e', "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"], { cwd: app, encoding: 'utf8' });
      expect(sqlite.status, sqlite.stderr).toBe(0);
    },
    900_000,
  );
});
