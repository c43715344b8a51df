// `dpfed coordinator`: starts a federation (gRPC server) and runs its rounds.
import { logRoundEvents, roundContext } from '@dpfed/coordinator/coordinator-event-log';
import { CoordinatorMetrics } from '@dpfed/coordinator/coordinator-metrics';
import { coordinatorIdentityPath, startCoordinator, type Coordinator } from '@dpfed/coordinator/coordinator-server';
import { lineLogger } from '@dpfed/proto/logger';
import { EnrolmentError, readEnrolmentFile } from '@dpfed/coordinator/enrolment';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { coordinatorPrivacy } from '@dpfed/coordinator/ledger-privacy';
import { chooseRound, exportModel } from '@dpfed/coordinator/model-export';
import { crossSiteResults, describeCrossSite, type CrossSiteSummary } from '@dpfed/coordinator/cross-site-results';
import { join } from 'node:path';
import { type DataSchema } from '@dpfed/proto/data-schema';
import { EvaluationWatch, estimateForTask } from '@dpfed/privacy/signal-to-noise';
import { parameterCount } from '@dpfed/proto/model-spec';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import type { RoundSummary } from '@dpfed/coordinator/round-machine';
import { evaluationDataEvaluator } from './evaluation-data.ts';
import { runCommand, UsageError, type CommandSpec } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';
import { loggerFromFlags, metricsServerFromFlags, observabilityFlags } from '@dpfed/proto/observability-flags';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import { tlsFlags, transportFromFlags } from '@dpfed/proto/tls-flags';

export const command: CommandSpec = {
  name: 'coordinator',
  summary: 'run a federation coordinator: a gRPC server institutions connect to (they open no ports)',
  flags: [
    { name: 'port', type: 'int', default: 50051, help: 'TCP port to listen on (0 = any free port)', check: (v) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535') },
    { name: 'host', type: 'string', default: '127.0.0.1', help: 'address to bind' },
    { name: 'db', type: 'string', default: 'dpfed.sqlite', help: 'SQLite file with runs, rounds, models, metrics and the epsilon ledger' },
    { name: 'key-dir', type: 'string', help: 'directory of key files, apart from the database (default $DPFED_KEY_DIR or ~/.config/dpfed/keys; created 0700)' },
    {
      name: 'identity',
      type: 'string',
      help: "the coordinator's Ed25519 key file, which countersigns its ledger (default <key-dir>/coordinator-<db name>-<hash of its path>.key; created 0600 if absent)",
    },
    { name: 'run-id', type: 'string', help: 'resume or create this run (default: resume the latest unfinished run, else start a new one)' },
    ...runFlags({ rounds: 10, minClients: 3, privacy: 'record', aggregation: 'secagg' }),
    ...tlsFlags('coordinator'),
    { name: 'enrol-file', type: 'string', help: 'JSON list [{"institution": ID, "publicKey": HEX}] added to the enrolment allow-list at start (else: dpfed enrol add)' },
    ...observabilityFlags('coordinator'),
    { name: 'json', type: 'boolean', help: 'print one JSON object per event (listening, round, round-failed, done) on stdout' },
    { name: 'export-dir', type: 'string', help: 'after each committed round, write its global model as a model folder DIR/<run>/round-<N> (as dpfed model export)' },
    { name: 'export-schema', type: 'string', help: "with --export-dir: the public data schema shipped as the exported models' preprocessing (default: --schema)" },
    { name: 'exit-when-done', type: 'boolean', default: true, help: 'exit once the planned rounds are committed' },
    {
      name: 'console-port',
      type: 'int',
      help: 'also serve the compliance console (read-only) on this port, on --host, over the same --db; users in <db>.console.sqlite (see dpfed console)',
      check: (v) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535'),
    },
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
    // before the run: does the plan's DP noise leave the model anything to learn? (privacy/signal-to-noise.ts)
    const signal = estimateForTask(config.task, { parameters: parameterCount(config.modelSpec), logistic: config.modelSpec.kind === 'logistic', institutions: config.minClients });
    if (signal?.warning) process.stderr.write(`dpfed coordinator: warning: ${signal.warning}\n`);
    const transport = transportFromFlags(f, 'coordinator', { command: 'coordinator' });
    let enrol: ReturnType<typeof readEnrolmentFile> | undefined;
    try {
      enrol = f.enrolFile ? readEnrolmentFile(String(f.enrolFile)) : undefined;
    } catch (error) {
      if (error instanceof EnrolmentError) throw new UsageError(error.message);
      throw error;
    }
    const evaluator = f.evaluationData
      ? await evaluationDataEvaluator(String(f.evaluationData), String(f.evaluationLabelColumn), config.modelSpec, {
          schemaPath: f.evaluationSchema ? String(f.evaluationSchema) : undefined,
          warn: (line) => process.stderr.write(`dpfed coordinator: ${line}\n`),
        })
      : undefined;
    let exportSchema: DataSchema | undefined;
    if (f.exportSchema !== undefined) {
      if (f.exportDir === undefined) throw new UsageError('--export-schema needs --export-dir');
      exportSchema = schemaFromFlag(f.exportSchema, 'export-schema');
    }
    const json = Boolean(f.json);
    const emit = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify(event) + '\n');
    let started: Coordinator | undefined;
    const logger = loggerFromFlags(f, { base: { component: 'coordinator' }, context: roundContext(() => started) });
    const metrics = new CoordinatorMetrics();
    // the metrics server comes up first, so /readyz answers 503 while the run loads and the port binds
    const metricsServer = await metricsServerFromFlags(f, metrics.registry, () => metrics.notReady());
    const keys = { dbPath: String(f.db), keyDir: f.keyDir ? String(f.keyDir) : undefined, identityPath: f.identity ? String(f.identity) : undefined };
    try {
      loadOrCreateIdentity(coordinatorIdentityPath(keys));
    } catch (error) {
      throw new UsageError(`${f.identity ? '--identity' : '--key-dir'}: ${(error as Error).message}`);
    }
    const coordinator = await startCoordinator({
      ...transport,
      enrol,
      dbPath: String(f.db),
      host: String(f.host),
      port: Number(f.port),
      runId: f.runId ? String(f.runId) : undefined,
      keyDir: f.keyDir ? String(f.keyDir) : undefined,
      identityPath: f.identity ? String(f.identity) : undefined,
      config,
      privacy: coordinatorPrivacy,
      log: lineLogger(logger),
      metrics,
      evaluator,
    }).catch(async (error: unknown) => {
      await metricsServer?.close();
      evaluator?.close?.();
      // an entry of --enrol-file that conflicts with the allow-list already in --db
      if (error instanceof EnrolmentError) throw new UsageError(`--enrol-file: ${error.message}`);
      throw error;
    });
    started = coordinator;
    let consoleServer: { url: string; close(): Promise<void> } | undefined;
    if (f.consolePort !== undefined) {
      const { startConsole } = await import('@dpfed/console/console-server');
      try {
        consoleServer = await startConsole({ dbPath: String(f.db), host: String(f.host), port: Number(f.consolePort) });
      } catch (error) {
        await coordinator.close();
        throw new UsageError(`--console-port: cannot start the console: ${(error as Error).message}`);
      }
      process.stderr.write(`dpfed coordinator: compliance console on ${consoleServer.url}\n`);
    }
    const { machine } = coordinator;
    logRoundEvents(machine, logger);
    if (!coordinator.enrolment.list().some((r) => r.status === 'active')) {
      process.stderr.write(`dpfed coordinator: no institution is enrolled in ${f.db}; every registration is refused until the operator runs dpfed enrol add\n`);
    }
    const resumed = coordinator.resumedFromRound;
    const metricsAddress = metricsServer ? `http://${metricsServer.address}/metrics` : undefined;
    if (json) emit({ event: 'listening', port: coordinator.port, runId: coordinator.runId, resumedFromRound: resumed, ...(metricsAddress ? { metrics: metricsAddress } : {}) });
    else {
      process.stdout.write(
        `dpfed coordinator listening on ${f.host}:${coordinator.port}, run ${coordinator.runId}` +
          (resumed ? `, resuming after round ${resumed}` : '') +
          `, privacy ${config.task.privacy.mode}, aggregation ${config.task.aggregation}\n`,
      );
      if (metricsAddress) process.stdout.write(`metrics on ${metricsAddress} (also /healthz, /readyz)\n`);
    }
    logger.info({ run: coordinator.runId, port: coordinator.port, metrics: metricsAddress, resumedFromRound: resumed }, 'coordinator listening');
    machine.on('waiting', (w: { round: number; live: number; needed: number }) => {
      if (!json) process.stdout.write(`round ${w.round}: waiting for institutions (${w.live} of ${w.needed} needed)\n`);
    });
    const watch = new EvaluationWatch();
    machine.on('round', (s: RoundSummary) => {
      const stalled = watch.observe(s);
      if (stalled) process.stderr.write(`dpfed coordinator: warning: ${stalled}\n`);
    });
    machine.on('round', (s: RoundSummary) => {
      if (json) emit({ event: 'round', ...s });
      else {
        const scored = !s.evaluated
          ? 'not evaluated this round (--evaluate-every)'
          : `global AUC ${s.auc.toFixed(4)}${s.aucStderr !== undefined ? ` ± ${s.aucStderr.toFixed(4)} (private evaluation)` : config.task.evaluation.coordinatorData ? " (on the coordinator's own data)" : ' (exact evaluation: no privacy claimed for validation rows)'}, loss ${s.loss.toFixed(4)}`;
        process.stdout.write(`round ${s.round}: ${s.participants} participants, ${scored}, ${s.seconds.toFixed(2)} s` + (s.dropped.length ? `, dropped: ${s.dropped.join(', ')}` : '') + '\n');
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
    // --cross-site-evaluation: each institution's own AUC of the final model, after the last round
    machine.on('cross-site', (s: CrossSiteSummary) => {
      if (json) emit({ event: 'cross-site', ...s });
      else {
        process.stdout.write(
          `cross-site evaluation of the final model (round ${s.round}), each institution on its own validation rows${s.private ? ' (its own noisy histograms, a cross-site event in its ledger)' : ' (exact: privacy off)'}:\n`,
        );
        for (const line of describeCrossSite(s)) process.stdout.write(`${line}\n`);
      }
      // the exported final model's card gains the cross-site figures
      if (f.exportDir !== undefined) {
        const outDir = join(String(f.exportDir), coordinator.runId, `round-${s.round}`);
        exports = exports
          .then(() => exportModel({ db: coordinator.store.db, runId: coordinator.runId, round: s.round, outDir, schema: exportSchema, force: true }))
          .then(
            () => {
              if (json) emit({ event: 'exported', round: s.round, dir: outDir, crossSite: true });
              else process.stdout.write(`round ${s.round}: model exported again to ${outDir} with the cross-site figures\n`);
            },
            (error: unknown) => {
              process.stderr.write(`dpfed coordinator: exporting round ${s.round} to ${outDir} failed: ${(error as Error).message}\n`);
            },
          );
      }
    });
    machine.on('round-failed', (e: { round: number; reason: string }) => (json ? emit({ event: 'round-failed', ...e }) : process.stdout.write(`${e.reason}\n`)));
    machine.on('backoff', (e: { round: number; failures: number; ms: number }) =>
      json ? emit({ event: 'backoff', ...e }) : process.stdout.write(`round ${e.round}: retrying in ${(e.ms / 1000).toFixed(1)} s (${e.failures} failed in a row)\n`),
    );
    machine.on('participant-dropped', (e: { round: number; institution: string; reason: string }) =>
      json ? emit({ event: 'participant-dropped', ...e }) : process.stdout.write(`round ${e.round}: ${e.institution} dropped: ${e.reason}\n`),
    );
    machine.on('declined', (e: { institution: string; reason: string; detail: string }) =>
      json ? emit({ event: 'declined', ...e }) : process.stdout.write(`${e.institution} declined: ${e.reason} ${e.detail}\n`),
    );
    const stop = () =>
      void Promise.all([coordinator.close(), consoleServer?.close()])
        .then(() => metricsServer?.close())
        .then(() => process.exit(130));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await coordinator.finished.catch(async (error: unknown) => {
      // the run ended by an error: the server goes down with it, so the process exits (with the message)
      // instead of serving institutions a run that no longer advances
      await consoleServer?.close();
      await coordinator.close();
      await metricsServer?.close();
      evaluator?.close?.();
      throw error;
    });
    await exports;
    const privacy = machine.privacySummary();
    // the run's result model (--keep): the last round, or the best by the recorded global AUC
    let kept: { keep: string; round: number } | undefined;
    try {
      // from the run as stored (a resumed run keeps the definition it was created with)
      const stored = coordinator.store.getRun(coordinator.runId);
      const keep = (stored ? (JSON.parse(stored.configJson) as RunConfig).keep : config.keep) ?? 'last';
      kept = { keep, round: chooseRound(coordinator.store.db, coordinator.runId, keep).round };
    } catch {
      kept = undefined; // no committed round, or no recorded AUC to choose by
    }
    const crossSite = crossSiteResults(coordinator.store.db, coordinator.runId);
    if (json)
      emit({
        event: 'done',
        runId: coordinator.runId,
        rounds: coordinator.store.rounds(coordinator.runId).length,
        institutions: privacy,
        ...(kept ? { kept } : {}),
        ...(crossSite ? { crossSite } : {}),
      });
    else {
      process.stdout.write(`run ${coordinator.runId} complete` + (kept ? `; result model: round ${kept.round} (--keep ${kept.keep})` : '') + '\n');
      for (const p of privacy) process.stdout.write(`  ${p.id}: epsilon ${p.epsilon.toFixed(3)} at delta ${p.delta}${p.budget ? ` (budget ${p.budget})` : ''}\n`);
    }
    if (f.exitWhenDone) {
      // give clients a moment to receive DONE before the server goes away
      await new Promise((r) => setTimeout(r, 300));
      await consoleServer?.close();
      await coordinator.close();
      await metricsServer?.close();
      evaluator?.close?.();
    }
    return 0;
  });
}
