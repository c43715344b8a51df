// `dpfed coordinator`: starts a federation (gRPC server) and runs its rounds.
import { startCoordinator } from '../coordinator/coordinator-server.ts';
import { EnrolmentError, readEnrolmentFile } from '../coordinator/enrolment.ts';
import { coordinatorPrivacy } from '../coordinator/ledger-privacy.ts';
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
    { name: 'exit-when-done', type: 'boolean', default: true, help: 'exit once the planned rounds are committed' },
    { name: 'console-port', type: 'int', help: 'also serve the compliance console (read-only) on this port, on --host, over the same --db; users in <db>.console.sqlite (see dpfed console)', check: (v) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535') },
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
    let consoleServer: { url: string; close(): Promise<void> } | undefined;
    if (f.consolePort !== undefined) {
      const { startConsole } = await import('../console/console-server.ts');
      try {
        consoleServer = await startConsole({ dbPath: String(f.db), host: String(f.host), port: Number(f.consolePort) });
      } catch (error) {
        await coordinator.close();
        throw new UsageError(`--console-port: cannot start the console: ${(error as Error).message}`);
      }
      process.stderr.write(`dpfed coordinator: compliance console on ${consoleServer.url}\n`);
    }
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
    machine.on('round-failed', (e: { round: number; reason: string }) => (json ? emit({ event: 'round-failed', ...e }) : process.stdout.write(`${e.reason}\n`)));
    machine.on('backoff', (e: { round: number; failures: number; ms: number }) =>
      json ? emit({ event: 'backoff', ...e }) : process.stdout.write(`round ${e.round}: retrying in ${(e.ms / 1000).toFixed(1)} s (${e.failures} failed in a row)\n`));
    machine.on('participant-dropped', (e: { round: number; institution: string; reason: string }) =>
      json ? emit({ event: 'participant-dropped', ...e }) : process.stdout.write(`round ${e.round}: ${e.institution} dropped: ${e.reason}\n`));
    machine.on('declined', (e: { institution: string; reason: string; detail: string }) =>
      json ? emit({ event: 'declined', ...e }) : process.stdout.write(`${e.institution} declined: ${e.reason} ${e.detail}\n`));
    const stop = () => void Promise.all([coordinator.close(), consoleServer?.close()]).then(() => process.exit(130));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await coordinator.finished;
    const privacy = machine.privacySummary();
    if (json) emit({ event: 'done', runId: coordinator.runId, rounds: coordinator.store.rounds(coordinator.runId).length, institutions: privacy });
    else {
      process.stdout.write(`run ${coordinator.runId} complete\n`);
      for (const p of privacy) process.stdout.write(`  ${p.id}: epsilon ${p.epsilon.toFixed(3)} at delta ${p.delta}${p.budget ? ` (budget ${p.budget})` : ''}\n`);
    }
    if (f.exitWhenDone) {
      // give clients a moment to receive DONE before the server goes away
      await new Promise((r) => setTimeout(r, 300));
      await consoleServer?.close();
      await coordinator.close();
    }
    return 0;
  });
}
