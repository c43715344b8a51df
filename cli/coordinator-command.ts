// `dpfed coordinator`: starts a federation (gRPC server) and runs its rounds.
import { startCoordinator } from '../coordinator/coordinator-server.ts';
import { EnrolmentError, readEnrolmentFile } from '../coordinator/enrolment.ts';
import { coordinatorPrivacy } from '../coordinator/ledger-privacy.ts';
import { exportModel } from '../coordinator/model-export.ts';
import { join } from 'node:path';
import { readSchemaFile, type DataSchema } from '../proto/data-schema.ts';
import type { RoundSummary } from '../coordinator/round-machine.ts';
import { runCommand, UsageError, type CommandSpec } from './flags.ts';
import { runConfigFromFlags, runFlags } from './run-flags.ts';
import { tlsFlags, transportFromFlags } from './tls-flags.ts';

export const command: CommandSpec = {
  name: 'coordinator',
  summary: 'run a federation coordinator: a gRPC server institutions connect to (they open no ports)',
  flags: [
    { name: 'port', type: 'int', default: 50051, help: 'TCP port to listen on (0 = any free port)', check: (v) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535') },
    { name: 'host', type: 'string', default: '127.0.0.1', help: 'address to bind' },
    { name: 'db', type: 'string', default: 'dpfed.sqlite', help: 'SQLite file with runs, rounds, models, metrics and the epsilon ledger' },
    { name: 'run-id', type: 'string', help: 'resume or create this run (default: resume the latest unfinished run, else start a new one)' },
    ...runFlags({ rounds: 10, minClients: 3, privacy: 'record', aggregation: 'secagg' }),
    ...tlsFlags('coordinator'),
    { name: 'enrol-file', type: 'string', help: 'JSON list [{"institution": ID, "publicKey": HEX}] added to the enrolment allow-list at start (else: dpfed enrol add)' },
    { name: 'json', type: 'boolean', help: 'print one JSON object per event (listening, round, round-failed, done) on stdout' },
    { name: 'export-dir', type: 'string', help: 'after each committed round, write its global model as a model folder DIR/<run>/round-<N> (as dpfed model export)' },
    { name: 'export-schema', type: 'string', help: 'with --export-dir: the public data schema shipped as the exported models\' preprocessing' },
    { name: 'exit-when-done', type: 'boolean', default: true, help: 'exit once the planned rounds are committed' },
  ],
  examples: [
    'dpfed certs init --out ca && dpfed certs issue --ca ca --name coordinator --server --hosts 127.0.0.1,localhost --out tls',
    'dpfed enrol add --db fed.sqlite --institution bank-a --public-key <64 hex from dpfed identity show>',
    'dpfed coordinator --port 50051 --db fed.sqlite --rounds 20 --min-clients 3 --strategy fedavg --privacy record --epsilon 3 \\\n' +
      '      --tls-ca ca/ca.crt --tls-cert tls/coordinator.crt --tls-key tls/coordinator.key',
  ],
};

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const config = runConfigFromFlags(f);
    const transport = transportFromFlags(f, 'coordinator', { command: 'coordinator' });
    let enrol;
    try {
      enrol = f.enrolFile ? readEnrolmentFile(String(f.enrolFile)) : undefined;
    } catch (error) {
      if (error instanceof EnrolmentError) throw new UsageError(error.message);
      throw error;
    }
    let exportSchema: DataSchema | undefined;
    if (f.exportSchema !== undefined) {
      if (f.exportDir === undefined) throw new UsageError('--export-schema needs --export-dir');
      try {
        exportSchema = readSchemaFile(String(f.exportSchema));
      } catch (error) {
        throw new UsageError(`--export-schema: ${(error as Error).message}`);
      }
    }
    const json = Boolean(f.json);
    const emit = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify(event) + '\n');
    const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
    const coordinator = await startCoordinator({
      ...transport,
      enrol,
      dbPath: String(f.db),
      host: String(f.host),
      port: Number(f.port),
      runId: f.runId ? String(f.runId) : undefined,
      config,
      privacy: coordinatorPrivacy,
      log: process.env.DPFED_DEBUG ? log : undefined,
    }).catch((error: unknown) => {
      // an entry of --enrol-file that conflicts with the allow-list already in --db
      if (error instanceof EnrolmentError) throw new UsageError(`--enrol-file: ${error.message}`);
      throw error;
    });
    const { machine } = coordinator;
    if (!coordinator.enrolment.list().some((r) => r.status === 'active')) {
      process.stderr.write(`dpfed coordinator: no institution is enrolled in ${f.db}; every registration is refused until the operator runs dpfed enrol add\n`);
    }
    const resumed = coordinator.resumedFromRound;
    if (json) emit({ event: 'listening', port: coordinator.port, runId: coordinator.runId, resumedFromRound: resumed });
    else {
      process.stdout.write(`dpfed coordinator listening on ${f.host}:${coordinator.port}, run ${coordinator.runId}` +
        (resumed ? `, resuming after round ${resumed}` : '') + `, privacy ${config.task.privacy.mode}, aggregation ${config.task.aggregation}\n`);
    }
    machine.on('waiting', (w: { round: number; live: number; needed: number }) => {
      if (!json) process.stdout.write(`round ${w.round}: waiting for institutions (${w.live} of ${w.needed} needed)\n`);
    });
    machine.on('round', (s: RoundSummary) => {
      if (json) emit({ event: 'round', ...s });
      else {
        process.stdout.write(`round ${s.round}: ${s.participants} participants, global AUC ${s.auc.toFixed(4)}, loss ${s.loss.toFixed(4)}, ${s.seconds.toFixed(2)} s` +
          (s.dropped.length ? `, dropped: ${s.dropped.join(', ')}` : '') + '\n');
      }
    });
    // Exports run one after another, after the round's commit; a failed export is reported, the federation goes on.
    let exports = Promise.resolve();
    if (f.exportDir !== undefined) {
      machine.on('round', (s: RoundSummary) => {
        const outDir = join(String(f.exportDir), coordinator.runId, `round-${s.round}`);
        exports = exports
          .then(() => exportModel({ db: coordinator.store.db, runId: coordinator.runId, round: s.round, outDir, schema: exportSchema, force: true }))
          .then(
            (r) => {
              if (json) emit({ event: 'exported', round: s.round, dir: outDir, modelHash: r.card.modelHash });
              else process.stdout.write(`round ${s.round}: model exported to ${outDir}\n`);
            },
            (error: unknown) => {
              process.stderr.write(`dpfed coordinator: exporting round ${s.round} to ${outDir} failed: ${(error as Error).message}\n`);
            },
          );
      });
    }
    machine.on('round-failed', (e: { round: number; reason: string }) => (json ? emit({ event: 'round-failed', ...e }) : process.stdout.write(`${e.reason}; retrying\n`)));
    machine.on('declined', (e: { institution: string; reason: string; detail: string }) =>
      json ? emit({ event: 'declined', ...e }) : process.stdout.write(`${e.institution} declined: ${e.reason} ${e.detail}\n`));
    const stop = () => void coordinator.close().then(() => process.exit(130));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await coordinator.finished;
    await exports;
    const privacy = machine.privacySummary();
    if (json) emit({ event: 'done', runId: coordinator.runId, rounds: coordinator.store.rounds(coordinator.runId).length, institutions: privacy });
    else {
      process.stdout.write(`run ${coordinator.runId} complete\n`);
      for (const p of privacy) process.stdout.write(`  ${p.id}: epsilon ${p.epsilon.toFixed(3)} at delta ${p.delta}${p.budget ? ` (budget ${p.budget})` : ''}\n`);
    }
    if (f.exitWhenDone) {
      // give clients a moment to receive DONE before the server goes away
      await new Promise((r) => setTimeout(r, 300));
      await coordinator.close();
    }
    return 0;
  });
}
