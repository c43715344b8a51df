// The packages as a bank and an operator get them: `npm pack` of the workspace packages, @dpfed/client
// installed alone into an empty folder from the tarballs (npm --prefer-offline: the npm cache the root
// install filled, the registry for anything missing), @dpfed/coordinator into another, and an institution
// run from the first (its `dpfed-client` command) against a coordinator run from the second, over real gRPC
// on 127.0.0.1. Both run the compiled dist/ (the children get no NODE_OPTIONS, so no tsx and no "source"
// condition) and resolve nothing from this repository (their folders are outside it).
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { bankSlices, FRAUD_SCHEMA, fraudSchemaOf, ROOT, runConfig, tempDir, writeBankCsv } from './helpers/federation-fixture.ts';

const PACKED = ['@dpfed/proto', '@dpfed/privacy', '@dpfed/client', '@dpfed/coordinator'];
const CLIENT_PACKAGES = ['@dpfed/client', '@dpfed/privacy', '@dpfed/proto'];
const COORDINATOR_PACKAGES = ['@dpfed/coordinator', '@dpfed/privacy', '@dpfed/proto'];
/** A module of each package, whose compiled .js and .d.ts the install must hold. */
const SAMPLE_MODULE: Record<string, string> = { '@dpfed/client': 'federation-client', '@dpfed/privacy': 'ledger', '@dpfed/proto': 'wire' };
/** What a bank must not get with the institution node. */
const NOT_FOR_A_BANK = [
  '@dpfed/coordinator',
  '@dpfed/console',
  '@dpfed/ckks',
  'dpfed',
  'node-seal',
  'fastify',
  'vega',
  'vega-lite',
  '@tensorflow/tfjs',
  '@tensorflow/tfjs-converter',
  '@tensorflow/tfjs-backend-webgl',
  'typescript',
  'tsx',
  'vitest',
];

/** The environment of the installed programs: none of the tests' NODE_OPTIONS (tsx, the "source" condition). */
function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

function run(command: string, args: string[], cwd: string, timeout = 600_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: plainEnv(), timeout, maxBuffer: 16 << 20, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed in ${cwd}: ${error.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** An empty project folder with `packages` installed from their tarballs. */
async function installInto(folder: string, packages: string[], tarballs: Map<string, string>): Promise<void> {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'package.json'), JSON.stringify({ name: 'installer', version: '1.0.0', private: true }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packages.map((p) => tarballs.get(p)!)], folder);
}

function installedPackages(folder: string): string[] {
  const modules = join(folder, 'node_modules');
  return readdirSync(modules).flatMap((name) => (name.startsWith('@') ? readdirSync(join(modules, name)).map((n) => `${name}/${n}`) : name.startsWith('.') ? [] : [name]));
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

describe('the packages installed from their tarballs', () => {
  let dir: string;
  let bank: string;
  let operator: string;

  beforeAll(async () => {
    dir = tempDir('dpfed-packages-');
    bank = join(dir, 'bank');
    operator = join(dir, 'operator');
    // the compiled packages match the sources (the build is incremental: cheap when nothing changed)
    await run(process.execPath, ['tools/workspaces/build.mjs'], ROOT);
    const out = join(dir, 'tarballs');
    mkdirSync(out);
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', out, ...PACKED.flatMap((p) => ['-w', p])], ROOT);
    const tarballs = new Map((JSON.parse(stdout) as { name: string; filename: string }[]).map((p) => [p.name, join(out, p.filename)]));
    expect([...tarballs.keys()].sort()).toEqual([...PACKED].sort());
    // two separate installs, side by side (each compiles better-sqlite3's addon when no prebuilt binary can be fetched)
    await Promise.all([installInto(bank, CLIENT_PACKAGES, tarballs), installInto(operator, COORDINATOR_PACKAGES, tarballs)]);
  }, 1_200_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a bank gets the institution node alone: compiled JavaScript and declarations, no coordinator, CKKS, console, full tfjs or dev tools', () => {
    const installed = installedPackages(bank);
    expect(installed.filter((p) => p.startsWith('@dpfed/')).sort()).toEqual([...CLIENT_PACKAGES].sort());
    for (const name of NOT_FOR_A_BANK) expect(installed, name).not.toContain(name);
    expect(installed).toEqual(expect.arrayContaining(['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm']));
    for (const name of CLIENT_PACKAGES) {
      const files = filesUnder(join(bank, 'node_modules', name));
      expect(
        files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
        name,
      ).toEqual([]);
      expect(files, name).toContain(join('dist', `${SAMPLE_MODULE[name]}.js`));
      expect(files, name).toContain(join('dist', `${SAMPLE_MODULE[name]}.d.ts`));
    }
    expect(existsSync(join(bank, 'node_modules', '.bin', 'dpfed-client'))).toBe(true);
  });

  it('runs an institution from that install against a coordinator installed from @dpfed/coordinator, over gRPC on 127.0.0.1', async () => {
    const work = join(dir, 'run');
    mkdirSync(work);
    const ids = ['bank-1', 'bank-2'];
    const slices = bankSlices(ids.length, { rowsPerBank: 1500, seed: 'packages' });
    const enrol = ids.map((id, k) => {
      writeBankCsv(join(work, `${id}.csv`), slices[k]);
      const identity = loadOrCreateIdentity(join(work, `${id}.identity`));
      return { institutionId: id, publicKey: Buffer.from(identity.publicKey).toString('hex') };
    });
    const config = { ...runConfig(['--rounds', '2', '--min-clients', '2', '--privacy', 'off', '--aggregation', 'plain']), schema: fraudSchemaOf() };
    writeFileSync(join(work, 'coordinator.json'), JSON.stringify({ dbPath: join(work, 'fed.sqlite'), keyDir: join(work, 'keys'), config, enrol }));
    // The operator's own program: @dpfed/coordinator's public API, as installed.
    writeFileSync(
      join(operator, 'run-coordinator.mjs'),
      `
      import { readFileSync } from 'node:fs';
      import { startCoordinator } from '@dpfed/coordinator/coordinator-server';
      const o = JSON.parse(readFileSync(process.argv[2], 'utf8'));
      const enrol = o.enrol.map((e) => ({ institutionId: e.institutionId, publicKey: Buffer.from(e.publicKey, 'hex') }));
      const coordinator = await startCoordinator({ dbPath: o.dbPath, keyDir: o.keyDir, config: o.config, enrol, host: '127.0.0.1', port: 0, insecure: true });
      coordinator.machine.on('round', (s) => console.log(JSON.stringify({ event: 'round', round: s.round, participants: s.participants, auc: s.auc })));
      coordinator.machine.on('round-failed', (f) => console.log(JSON.stringify({ event: 'round-failed', ...f })));
      console.log(JSON.stringify({ event: 'listening', port: coordinator.port, resolved: import.meta.resolve('@dpfed/coordinator/coordinator-server') }));
      await coordinator.finished;
      // the server stays up so that the institutions receive DONE; the test stops this process
      console.log(JSON.stringify({ event: 'done' }));
    `,
    );
    const coordinator = spawn(process.execPath, ['run-coordinator.mjs', join(work, 'coordinator.json')], { cwd: operator, env: plainEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const events: Record<string, unknown>[] = [];
    let coordinatorErr = '';
    coordinator.stderr!.on('data', (d: Buffer) => (coordinatorErr += d));
    const lines = createInterface({ input: coordinator.stdout! });
    lines.on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>)); // before the listeners below
    const exited = new Promise<never>((_, reject) => coordinator.on('exit', (code) => reject(new Error(`the coordinator exited with ${code}: ${coordinatorErr}`))));
    exited.catch(() => {});
    /** The coordinator's event `name`, once it has printed it. */
    const event = (name: string) =>
      Promise.race([
        exited,
        new Promise<Record<string, unknown>>((resolve) => {
          const seen = events.find((e) => e.event === name);
          if (seen) return resolve(seen);
          lines.on('line', () => {
            const found = events.find((e) => e.event === name);
            if (found) resolve(found);
          });
        }),
      ]);
    const listening = event('listening');
    try {
      const { port, resolved } = await listening;
      expect(String(resolved)).toBe(`file://${join(operator, 'node_modules', '@dpfed', 'coordinator', 'dist', 'coordinator-server.js')}`);
      const clients = ids.map((id) =>
        run(
          join(bank, 'node_modules', '.bin', 'dpfed-client'),
          [
            '--coordinator',
            `127.0.0.1:${port}`,
            '--institution',
            id,
            '--insecure',
            '--json',
            '--backend',
            'wasm',
            '--data',
            join(work, `${id}.csv`),
            '--schema',
            FRAUD_SCHEMA,
            '--identity',
            join(work, `${id}.identity`),
            '--ledger',
            join(work, `${id}.ledger.sqlite`),
            '--log-level',
            'warn',
          ],
          bank,
          300_000,
        ),
      );
      const outcomes = await Promise.all(clients);
      for (const { stdout } of outcomes) {
        const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
        expect(summary).toMatchObject({ roundsTrained: 2, backend: 'wasm' });
      }
      await event('done');
      const rounds = events.filter((e) => e.event === 'round');
      expect(rounds.map((r) => [r.round, r.participants])).toEqual([
        [1, 2],
        [2, 2],
      ]);
      for (const r of rounds) expect(r.auc as number).toBeGreaterThan(0.5);
      expect(events.filter((e) => e.event === 'round-failed')).toEqual([]);
      // the institution ran the compiled client of its own install
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('@dpfed/client/federation-client'))"], bank);
      expect(stdout.trim()).toBe(`file://${join(bank, 'node_modules', '@dpfed', 'client', 'dist', 'federation-client.js')}`);
      expect(readFileSync(join(bank, 'node_modules', '.bin', 'dpfed-client'), 'utf8')).toContain("import('@dpfed/client/client-command')");
    } finally {
      coordinator.kill();
    }
  }, 600_000);

  it('a coordinator without the optional CKKS plugin refuses a --aggregation ckks run, naming the package to install', async () => {
    expect(installedPackages(operator)).not.toContain('node-seal');
    const work = join(dir, 'ckks');
    mkdirSync(work);
    const config = runConfig(['--rounds', '1', '--min-clients', '2', '--privacy', 'off', '--aggregation', 'ckks']);
    writeFileSync(join(work, 'config.json'), JSON.stringify(config));
    writeFileSync(
      join(operator, 'start-ckks.mjs'),
      `
      import { readFileSync } from 'node:fs';
      import { startCoordinator } from '@dpfed/coordinator/coordinator-server';
      const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
      await startCoordinator({ dbPath: process.argv[3], keyDir: process.argv[4], config, host: '127.0.0.1', port: 0, insecure: true });
    `,
    );
    const failed = await run(process.execPath, ['start-ckks.mjs', join(work, 'config.json'), join(work, 'fed.sqlite'), join(work, 'keys')], operator, 60_000).then(
      () => null,
      (error: Error) => error.message,
    );
    expect(failed).toContain('--aggregation ckks needs the optional CKKS plugin, which is not installed: run "npm install @dpfed/ckks"');
  });
});
