// `dpfed demo` (npm run demo): a coordinator and N banks as separate processes talking real gRPC on
// 127.0.0.1, on the bundled card-fraud data split across the banks. As in production, it runs with
// mutual TLS (a federation CA, the coordinator's and each bank's certificates, made in a temp folder) and
// only enrolled banks (their identity keys, handed to the coordinator with --enrol-file).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describeCrossSite, type CrossSiteSummary } from '@dpfed/coordinator/cross-site-results';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ensureKeyDir, institutionKeyPath, loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { CA_CERT_FILE, createCertificateAuthority, issueCertificate } from '@dpfed/proto/certificate-authority';
import { labelColumn, type DataSchema } from '@dpfed/proto/data-schema';
import { DPFED_BIN, REPOSITORY_DATA_DIR } from './package-paths.ts';
import { exportAndEvaluate, heldOutLine, HELD_OUT_SHARE, holdOut, type HeldOutMetrics } from './demo-held-out.ts';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { BACKEND_NAMES } from '@dpfed/client/tf-backend';
import { runCommand, UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import { estimateForTask } from '@dpfed/privacy/signal-to-noise';
import { parameterCount } from '@dpfed/proto/model-spec';
import { NODE_HEAP_FLAGS } from './node-heap.ts';

/** The banks' validation share (dpfed client --validation-fraction default): their training rows are the rest. */
const DEMO_VALIDATION_FRACTION = 0.2;
const BIN = DPFED_BIN;
const DATA = join(REPOSITORY_DATA_DIR, 'creditcard_fraud_ulb_sample.csv');
const SCHEMA = join(REPOSITORY_DATA_DIR, 'creditcard_fraud_ulb_sample.schema.json');

/** `features` is not a demo flag: the model's input count is the schema's number of feature columns. */
const DEMO_OWN = new Set(['db', 'institutions', 'backend', 'json', 'budget-epsilon', 'keep', 'data', 'schema', 'round-timeout', 'features', 'insecure', 'metrics-port']);
/** Flags the demo sets on the coordinator itself, from --institutions. */
const COORDINATOR_SET = new Set(['min-clients', 'wait-for']);
// The demo evaluates every round, privately, within the run's ε = 3 (the default 20 % share for the 10
// evaluations): its 4 banks hold about 95 fraud rows for validation, so a round's AUC is uncertain by a
// few hundredths (the auc_stderr printed beside it).
const SHARED = runFlags({ rounds: 10, minClients: 3, privacy: 'record', aggregation: 'secagg' });

export const command: CommandSpec = {
  name: 'demo',
  summary: 'a coordinator and 4 banks as separate processes over gRPC on 127.0.0.1, on real card-fraud data',
  flags: [
    { name: 'db', type: 'string', default: 'dpfed-demo.sqlite', help: 'coordinator SQLite file; the banks keep their own ledgers in <db>.banks/, and every key lives apart in <db>.keys/' },
    { name: 'institutions', type: 'int', default: 4, help: 'number of banks', check: (v) => (Number(v) >= 2 && Number(v) <= 32 ? undefined : 'must be 2..32') },
    { name: 'backend', type: 'string', default: 'wasm', choices: BACKEND_NAMES, help: 'TensorFlow.js backend of the banks' },
    { name: 'budget-epsilon', type: 'number', default: 5, help: "each bank's own privacy budget epsilon", check: (v) => (Number(v) > 0 ? undefined : 'must be positive') },
    { name: 'round-timeout', type: 'number', default: 60, help: 'seconds to collect training results', check: (v) => (Number(v) > 0 ? undefined : 'must be positive') },
    { name: 'data', type: 'string', default: DATA, help: 'CSV to split across the banks (binary column "label")' },
    { name: 'schema', type: 'string', default: SCHEMA, help: 'public data schema of --data (JSON); every bank preprocesses with it and the model takes its feature columns' },
    { name: 'keep', type: 'boolean', help: "keep an existing demo database and the banks' ledgers (default: start fresh)" },
    { name: 'json', type: 'boolean', help: 'stdout carries only one JSON summary at the end (progress goes to stderr)' },
    { name: 'insecure', type: 'boolean', help: 'plaintext gRPC instead of mutual TLS (the processes print a warning)' },
    {
      name: 'metrics-port',
      type: 'int',
      help: 'the coordinator serves Prometheus /metrics, /healthz and /readyz on this port (0 = any free port; the address is printed)',
      check: (v) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535'),
    },
    ...SHARED.filter((f) => !DEMO_OWN.has(f.name) && !COORDINATOR_SET.has(f.name)).map((f) => (f.name === 'rounds' ? { ...f, default: 10 } : f)),
  ],
  examples: ['npm run demo', 'npm run demo -- --json --seed 3 --privacy client', 'dpfed demo --rounds 5 --institutions 6 --epsilon 2'],
};

/**
 * Sets aside the held-out slice (<dir>/held-out.csv, cli/demo-held-out.ts), then splits the other rows
 * across the banks.
 */
function splitAcrossBanks(csvPath: string, banks: number, seed: string, dir: string): { files: string[]; heldOutCsv: string; heldOutRows: number; rowsPerBank: number } {
  const lines = readFileSync(csvPath, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  const [header, ...all] = lines;
  const heldOutCsv = join(dir, 'held-out.csv');
  const { training: rows, heldOut: heldOutRows } = holdOut(header, all, seed, heldOutCsv);
  new SeededRandom(`${seed}:demo-split`).shuffle(rows);
  const files: string[] = [];
  for (let b = 0; b < banks; b++) {
    const file = join(dir, `bank-${b + 1}.csv`);
    writeFileSync(file, [header, ...rows.filter((_, i) => i % banks === b)].join('\n') + '\n');
    files.push(file);
  }
  return { files, heldOutCsv, heldOutRows, rowsPerBank: rows.length / banks };
}

/**
 * Each bank's split key, written where `dpfed client` looks for it. A real institution's key is random
 * (created by the client on first use); the demo derives it from --seed so that a seed reproduces the
 * banks' train/validation splits.
 */
function writeDemoSplitKeys(banks: number, seed: string, dir: string): string[] {
  ensureKeyDir(dir);
  return Array.from({ length: banks }, (_, i) => {
    const path = join(dir, `bank-${i + 1}.split-key`);
    const key = createHash('sha256')
      .update(`dpfed-demo-split-key:${seed}:bank-${i + 1}`)
      .digest('hex');
    writeFileSync(path, key + '\n', { mode: 0o600 });
    return path;
  });
}

function resetDemoState(db: string, banksDir: string, keyDir: string): void {
  if (existsSync(db)) {
    let isDpfed = false;
    try {
      const probe = new Database(db, { readonly: true, fileMustExist: true });
      isDpfed = Boolean(probe.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").get());
      probe.close();
    } catch {
      isDpfed = false;
    }
    if (!isDpfed) throw new UsageError(`--db: ${db} exists and is not a dpfed database; choose another file`);
    for (const suffix of ['', '-wal', '-shm', '.coordinator-key']) rmSync(db + suffix, { force: true });
  }
  rmSync(banksDir, { recursive: true, force: true });
  rmSync(keyDir, { recursive: true, force: true });
}

/**
 * The demo's federation PKI in `dir`: a CA, the coordinator's server certificate for 127.0.0.1, and a
 * client certificate per bank. Returns each side's --tls-* flags.
 */
async function demoCertificates(dir: string, banks: string[]): Promise<{ coordinator: string[]; bank: (id: string) => string[] }> {
  const ca = await createCertificateAuthority(join(dir, 'ca'), { name: 'dpfed demo CA', days: 2 });
  const server = await issueCertificate(join(dir, 'ca'), { name: 'coordinator', outDir: join(dir, 'coordinator'), server: true, hosts: ['127.0.0.1', 'localhost'], days: 2 });
  const issued = new Map<string, string[]>();
  for (const id of banks) {
    const files = await issueCertificate(join(dir, 'ca'), { name: id, outDir: join(dir, id), days: 2 });
    issued.set(id, ['--tls-ca', ca.certPath, '--tls-cert', files.certPath, '--tls-key', files.keyPath]);
  }
  return {
    coordinator: ['--tls-ca', join(dir, 'ca', CA_CERT_FILE), '--tls-cert', server.certPath, '--tls-key', server.keyPath],
    bank: (id) => issued.get(id)!,
  };
}

function forward(f: FlagValues, names: string[]): string[] {
  const out: string[] = [];
  for (const name of names) {
    const key = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const value = f[key];
    if (value === undefined || value === false) continue;
    out.push(`--${name}`);
    if (value !== true) out.push(String(value));
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const json = Boolean(f.json);
    const say = (line: string) => (json ? process.stderr : process.stdout).write(line + '\n');
    const banks = Number(f.institutions);
    if (f.aggregation === 'secagg' && banks < 3) throw new UsageError("--institutions must be at least 3 with --aggregation secagg (with 2, each bank learns the other's update from the sum)");
    const rounds = Number(f.rounds);
    const db = resolve(String(f.db));
    const banksDir = `${db}.banks`;
    const keyDir = `${db}.keys`;
    if (!f.keep) resetDemoState(db, banksDir, keyDir);
    mkdirSync(banksDir, { recursive: true });
    const schema: DataSchema = schemaFromFlag(f.schema)!;
    const { files, heldOutCsv, heldOutRows, rowsPerBank } = splitAcrossBanks(String(f.data), banks, String(f.seed), banksDir);
    say(`demo: ${heldOutRows} rows (${(HELD_OUT_SHARE * 100).toFixed(0)} %, chosen by a seeded hash) held out from every bank in ${heldOutCsv}`);
    const minClients = Math.max(f.aggregation === 'secagg' ? 3 : 2, banks - 1);
    // before the run: does DP noise leave the model anything to learn, with these banks' row counts?
    const plan = runConfigFromFlags({ ...f, minClients, waitFor: banks, features: undefined });
    const signal = estimateForTask(plan.task, {
      parameters: parameterCount(plan.modelSpec),
      logistic: plan.modelSpec.kind === 'logistic',
      institutions: banks,
      rowsPerInstitution: rowsPerBank * (1 - DEMO_VALIDATION_FRACTION),
    });
    if (signal?.warning) process.stderr.write(`demo: warning: ${signal.warning}\n`);
    // secret keys (identities, split keys) live apart from the ledgers, in <db>.keys/ (0700, files 0600)
    const splitKeys = writeDemoSplitKeys(banks, String(f.seed), keyDir);
    const started = performance.now();
    const bankIds = files.map((_, i) => `bank-${i + 1}`);
    // the operator's side: enrol each bank's identity key (the banks keep their keys in <db>.keys/)
    const enrolFile = join(banksDir, 'enrolment.json');
    writeFileSync(
      enrolFile,
      JSON.stringify(
        bankIds.map((id) => ({
          institution: id,
          publicKey: Buffer.from(loadOrCreateIdentity(institutionKeyPath(keyDir, id)).publicKey).toString('hex'),
        })),
      ),
    );
    const tlsDir = f.insecure ? null : mkdtempSync(join(tmpdir(), 'dpfed-demo-tls-'));
    const tls = tlsDir ? await demoCertificates(tlsDir, bankIds) : null;

    // the demo prints its own lines per round; its processes' logs show only warnings and errors, as text
    const DEMO_LOGS = ['--log-format', 'text', '--log-level', 'warn'];
    const children: ChildProcess[] = [];
    const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
    const removeTls = () => tlsDir && rmSync(tlsDir, { recursive: true, force: true });
    process.once('SIGINT', () => {
      killAll();
      removeTls();
      process.exit(130);
    });

    const shared = forward(
      f,
      SHARED.map((s) => s.name).filter((n) => !DEMO_OWN.has(n) && !COORDINATOR_SET.has(n)),
    );
    // Start when every bank is connected; carry on if one drops out (secure aggregation needs 3 at least).
    const coordinator = spawn(
      process.execPath,
      [
        ...NODE_HEAP_FLAGS,
        BIN,
        'coordinator',
        '--port',
        '0',
        '--db',
        db,
        '--key-dir',
        keyDir,
        '--json',
        ...DEMO_LOGS,
        '--min-clients',
        String(minClients),
        '--wait-for',
        String(banks),
        '--round-timeout',
        String(f.roundTimeout),
        '--schema',
        String(f.schema),
        '--enrol-file',
        enrolFile,
        ...(f.metricsPort !== undefined ? ['--metrics-port', String(f.metricsPort), '--metrics-host', '127.0.0.1'] : []),
        ...(tls ? tls.coordinator : ['--insecure']),
        ...shared,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(coordinator);

    // Every round has an `auc`: its own when it was evaluated, else the last evaluated one (null before any).
    const summaryRounds: { round: number; auc: number | null; evaluated: boolean; aucStderr?: number; participants: number; seconds: number }[] = [];
    let lastAuc: number | null = null;
    type DoneEvent = { institutions: { id: string; epsilon: number; delta: number; budget: number | null }[]; runId: string };
    let done = null as DoneEvent | null;
    let crossSite = null as CrossSiteSummary | null;
    let runId = '';
    const bankResults: Promise<number>[] = [];
    const lines = createInterface({ input: coordinator.stdout! });
    const startBanks = (port: number) => {
      files.forEach((file, i) => {
        const id = `bank-${i + 1}`;
        const child = spawn(
          process.execPath,
          [
            ...NODE_HEAP_FLAGS,
            BIN,
            'client',
            '--coordinator',
            `127.0.0.1:${port}`,
            '--institution',
            id,
            ...DEMO_LOGS,
            '--data',
            file,
            '--schema',
            String(f.schema),
            '--split-key',
            splitKeys[i],
            '--backend',
            String(f.backend),
            '--key-dir',
            keyDir,
            '--ledger',
            join(banksDir, `${id}.ledger.sqlite`),
            '--budget-epsilon',
            String(f.budgetEpsilon),
            '--budget-delta',
            String(f.delta),
            '--json',
            ...(tls ? tls.bank(id) : ['--insecure']),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        children.push(child);
        child.stderr!.on('data', (d: Buffer) => {
          for (const line of d.toString().split('\n')) if (line.trim() && !/^\s*at |tfjs|Hi there|cpu backend/.test(line)) say(`  ${line}`);
        });
        child.stdout!.resume();
        bankResults.push(new Promise((r) => child.on('exit', (code) => r(code ?? 1))));
      });
    };
    for await (const line of lines) {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line);
      } catch {
        continue;
      }
      if (event.event === 'listening') {
        runId = String(event.runId);
        say(
          `demo: coordinator on 127.0.0.1:${event.port} (run ${runId}); starting ${banks} banks; privacy ${f.privacy}` +
            (f.privacy === 'record' ? ` (target epsilon ${f.epsilon}, delta ${f.delta})` : '') +
            `, aggregation ${f.aggregation}` +
            (tls ? ', mutual TLS, enrolled banks only' : ', plaintext (--insecure), enrolled banks only'),
        );
        if (event.metrics) say(`demo: coordinator metrics at ${String(event.metrics)} (also /healthz, /readyz)`);
        startBanks(Number(event.port));
      } else if (event.event === 'round') {
        const evaluated = event.evaluated !== false;
        if (evaluated) lastAuc = typeof event.auc === 'number' ? event.auc : null;
        const stderr = typeof event.aucStderr === 'number' ? event.aucStderr : undefined;
        const r = {
          round: Number(event.round),
          auc: lastAuc,
          evaluated,
          ...(evaluated && stderr !== undefined ? { aucStderr: stderr } : {}),
          participants: Number(event.participants),
          seconds: Number(event.seconds),
        };
        summaryRounds.push(r);
        const scored = !evaluated
          ? 'not evaluated this round'
          : r.auc === null
            ? 'global AUC undefined (no evaluation arrived)'
            : `global AUC ${r.auc.toFixed(4)}${stderr !== undefined ? ` ± ${stderr.toFixed(4)} (private evaluation)` : f.privacy === 'record' ? '' : ' (exact evaluation: privacy off)'}`;
        say(`round ${r.round}/${rounds}: ${r.participants} participants, ${scored}, ${r.seconds.toFixed(2)} s`);
      } else if (event.event === 'round-failed') {
        say(`round ${event.round} failed: ${event.reason}`);
      } else if (event.event === 'declined') {
        say(`${event.institution} declined: ${event.detail}`);
      } else if (event.event === 'cross-site') {
        crossSite = event as unknown as CrossSiteSummary;
        say(`demo: cross-site evaluation of the final model, each bank on its own validation rows${crossSite.private ? ' (its own noisy histograms; a cross-site event in its ledger)' : ' (exact)'}:`);
        for (const line of describeCrossSite(crossSite)) say(line);
      } else if (event.event === 'done') {
        done = event as unknown as DoneEvent;
      }
    }
    const coordinatorExit = await new Promise<number>((r) => (coordinator.exitCode !== null ? r(coordinator.exitCode) : coordinator.on('exit', (c) => r(c ?? 1))));
    const bankExits = await Promise.race([Promise.all(bankResults), new Promise<number[]>((r) => setTimeout(() => r([]), 15_000))]);
    killAll();
    removeTls();
    if (coordinatorExit !== 0 || !done) {
      process.stderr.write(`demo: the coordinator exited with code ${coordinatorExit}\n`);
      return 1;
    }
    const finished: DoneEvent = done;
    const federation = finished.institutions.find((i) => i.id === 'federation');
    const institutions = files.map((_, i) => {
      const id = `bank-${i + 1}`;
      const own = finished.institutions.find((x) => x.id === id) ?? federation;
      return { id, epsilon: own?.epsilon ?? 0, delta: own?.delta ?? Number(f.delta), budget: Number(f.budgetEpsilon) };
    });
    const finalAuc = lastAuc ?? Number.NaN;
    const seconds = (performance.now() - started) / 1000;
    if (f.privacy !== 'off') {
      say(`privacy spent (${f.privacy === 'record' ? "record-level, each bank's own records" : 'client-level, the federation'}; composed from the ledger's events):`);
      for (const i of institutions) say(`  ${i.id}: epsilon ${i.epsilon.toFixed(3)} at delta ${i.delta} (budget ${i.budget})`);
    }
    say(
      `demo: ${Number.isFinite(finalAuc) ? `final global AUC ${finalAuc.toFixed(4)}` : 'no global AUC (client-level DP: the banks do not evaluate)'} after ${summaryRounds.length} rounds in ${seconds.toFixed(1)} s; ledger: dpfed ledger --db ${db}`,
    );
    say(`demo: compliance console: dpfed console users add --db ${db} --username NAME --role compliance < password-file, then dpfed console --db ${db} --port 8080`);
    if (bankExits.some((c) => c !== 0)) say(`demo: warning: bank exit codes ${bankExits.join(', ')}`);
    // the final model, exported as `dpfed model export` would, and scored on the rows no bank saw
    let final: { model: string; heldOut: HeldOutMetrics } | null = null;
    try {
      final = await exportAndEvaluate({ dbPath: db, runId, outDir: `${db}.model`, heldOutCsv, labelColumn: labelColumn(schema).name });
      say(`demo: final model exported to ${final.model} (load it with dpfed predict / dpfed evaluate --model ${final.model})`);
      say(`demo: held-out evaluation (dpfed evaluate --model ${final.model} --data ${heldOutCsv} --label-column ${labelColumn(schema).name}): ${heldOutLine(final.heldOut)}`);
    } catch (error) {
      process.stderr.write(`demo: exporting or evaluating the final model failed: ${(error as Error).message}\n`);
      return 1;
    }
    if (json) {
      process.stdout.write(
        JSON.stringify({
          rounds: summaryRounds,
          finalAuc,
          institutions,
          privacy: { mode: f.privacy, epsilon: f.privacy === 'record' ? Number(f.epsilon) : undefined, delta: Number(f.delta), accountant: f.accountant },
          aggregation: f.aggregation,
          runId,
          db,
          seed: String(f.seed),
          seconds,
          model: final.model,
          heldOut: final.heldOut,
          ...(crossSite ? { crossSite: { round: crossSite.round, private: crossSite.private, institutions: crossSite.institutions } } : {}),
        }) + '\n',
      );
    }
    return 0;
  });
}
