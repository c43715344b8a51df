// `dpfed ledger`: read, verify and export an ε ledger. Read-only: the SQLite file is opened with
// { readonly: true, fileMustExist: true } and nothing in it is ever changed.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { PrivacyLedger, type InstitutionSummary } from '@dpfed/privacy/ledger';
import { ledgerReport, thisRunOf } from '@dpfed/privacy/ledger-report';
import { parseReceipts, ReceiptStore, type LedgerReceipt } from '@dpfed/privacy/receipts';
import { runCommand, UsageError, type CommandSpec } from '@dpfed/proto/command-flags';

export const LEDGER_COMMAND: CommandSpec = {
  name: 'ledger',
  summary: 'read, verify and export the epsilon ledger (read-only)',
  usage: 'dpfed ledger --db FILE [--institution ID] [--run ID] [--accountant rdp|pld] [--json] | --verify [--receipts FILE] | --export csv [--out FILE] | --export-receipts [--out FILE]',
  flags: [
    { name: 'db', type: 'string', help: 'SQLite file holding the ledger (a coordinator database or an institution ledger)', required: true },
    { name: 'institution', type: 'string', help: 'only this institution' },
    { name: 'run', type: 'string', help: 'only the events of this run (remaining budget still counts every run)' },
    { name: 'accountant', type: 'string', choices: ['rdp', 'pld'], default: 'rdp', help: 'accountant composing the events into epsilon' },
    { name: 'json', type: 'boolean', help: 'print one JSON object instead of a table' },
    { name: 'verify', type: 'boolean', help: 'check the hash chain and every signature; exit 0 when intact, 1 naming the first bad row' },
    {
      name: 'coordinator-key',
      type: 'string',
      help: 'with --verify: the countersigner public key (64 hex) you trust',
      check: (v) => (/^[0-9a-fA-F]{64}$/.test(String(v)) ? undefined : 'expected 64 hex characters'),
    },
    {
      name: 'receipts',
      type: 'string',
      help: 'with --verify: a receipts file from the OTHER party (its --export-receipts); fails when this ledger no longer holds a row a receipt names (truncated, wiped, replaced or re-chained)',
    },
    { name: 'export', type: 'string', choices: ['csv'], help: 'export the events' },
    {
      name: 'export-receipts',
      type: 'boolean',
      help: "print the receipts this file holds of the other party's ledger (a coordinator database: each institution's signed heads; an institution ledger: the coordinator's), as JSON for --receipts",
    },
    { name: 'out', type: 'string', help: 'with --export or --export-receipts: write to this file instead of stdout' },
  ],
  examples: [
    'dpfed ledger --db dpfed.sqlite',
    'dpfed ledger --db dpfed.sqlite --institution bank-1 --json',
    'dpfed ledger --db dpfed.sqlite --verify',
    'dpfed ledger --db dpfed.sqlite --export csv --out ledger.csv',
    'dpfed ledger --db dpfed.sqlite --export-receipts --institution bank-a --out bank-a-receipts.json',
    'dpfed ledger --db bank-a.ledger.sqlite --verify --receipts bank-a-receipts.json',
  ],
};

function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential();
  return Number(x.toPrecision(digits)).toString();
}

/**
 * "This run" beside "all runs on this ledger": the run given with --run, else, when the ledger holds events
 * of several runs, the run of its latest event. Undefined when the ledger holds one run or none.
 */
function renderTable(
  summaries: InstitutionSummary[],
  head: { seq: number; hash: string },
  accountant: string,
  runId?: string,
  thisRun?: { run: { runId: string; given: boolean; runs: number }; epsilon: Map<string, number> },
): string {
  const epsilonColumns = thisRun ? ['this run eps', 'all runs eps'] : ['epsilon'];
  const header = ['institution', ...epsilonColumns, 'delta', 'budget eps', 'remaining', 'rounds left', 'events', 'refusals'];
  const rows = summaries.map((s) => [
    s.institutionId,
    ...(thisRun ? [fmt(thisRun.epsilon.get(s.institutionId) ?? 0), fmt(s.epsilonTotal)] : [fmt(s.epsilon)]),
    fmt(s.delta, 3),
    fmt(s.budget.epsilon),
    fmt(s.remaining),
    s.projectedRoundsLeft === null ? '-' : String(s.projectedRoundsLeft),
    String(s.events.length),
    String(s.refusals.length),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [
    `epsilon ledger: ${head.seq} rows, head ${head.hash.slice(0, 16)}…, ${accountant} accountant${runId ? `, run ${runId}` : ''}`,
    ...(thisRun
      ? [
          `this run: ${thisRun.run.runId} (${thisRun.run.given ? 'given with --run' : `the latest of ${thisRun.run.runs} runs on this ledger; choose another with --run`}); all runs: every run on this ledger, what the budget is charged`,
        ]
      : []),
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ];
  if (summaries.length === 0) out.push('(no institutions registered)');
  for (const s of summaries) {
    for (const r of s.refusals) out.push(`refused: ${s.institutionId} run ${r.runId} round ${r.round}: ${r.reason} (projected epsilon ${fmt(r.projectedEpsilon)})`);
  }
  out.push('', 'epsilon is composed from all events by the accountant, never summed; remaining counts every run. Check integrity with --verify.');
  return out.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(LEDGER_COMMAND, argv, async (flags) => {
    const file = flags.db as string;
    const verify = flags.verify === true;
    const exportFormat = flags.export as string | undefined;
    const exportReceipts = flags.exportReceipts === true;
    if ([verify, exportFormat !== undefined, exportReceipts].filter(Boolean).length > 1) throw new UsageError('--verify, --export and --export-receipts cannot be combined');
    if (flags.out !== undefined && !exportFormat && !exportReceipts) throw new UsageError('--out needs --export csv or --export-receipts');
    if (flags.coordinatorKey !== undefined && !verify) throw new UsageError('--coordinator-key needs --verify');
    if (flags.receipts !== undefined && !verify) throw new UsageError('--receipts needs --verify');
    if (!existsSync(file)) throw new UsageError(`--db: no such file: ${file}`);
    let receipts: LedgerReceipt[] | undefined;
    if (flags.receipts !== undefined) {
      const path = String(flags.receipts);
      if (!existsSync(path)) throw new UsageError(`--receipts: no such file: ${path}`);
      try {
        receipts = parseReceipts(readFileSync(path, 'utf8'), path);
      } catch (error) {
        throw new UsageError(`--receipts: ${(error as Error).message}`);
      }
      if (receipts.length === 0) throw new UsageError(`--receipts: ${path} holds no receipts`);
    }
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
    } catch (error) {
      throw new UsageError(`--db: cannot open ${file} as SQLite: ${(error as Error).message}`);
    }
    try {
      if (exportReceipts) {
        const held = ReceiptStore.read(db, { subject: flags.institution as string | undefined });
        const text = JSON.stringify(held, null, 2) + '\n';
        if (flags.out) writeFileSync(flags.out as string, text);
        else process.stdout.write(text);
        if (held.length === 0) process.stderr.write(`dpfed ledger: ${file} holds no receipts${flags.institution ? ` for ${String(flags.institution)}` : ''}\n`);
        return 0;
      }
      let ledger: PrivacyLedger;
      try {
        ledger = new PrivacyLedger(db);
      } catch (error) {
        const message = `${file}: ${(error as Error).message}`;
        if (!verify) throw new UsageError(message);
        process.stderr.write(`dpfed ledger: verification FAILED: ${message}\n`);
        if (flags.json) process.stdout.write(JSON.stringify({ ok: false, badRow: 0, reason: message }) + '\n');
        return 1;
      }
      if (verify) {
        const key = flags.coordinatorKey as string | undefined;
        const result = ledger.verify({ countersignerPublicKey: key ? new Uint8Array(Buffer.from(key.toLowerCase(), 'hex')) : undefined, receipts });
        if (flags.json) process.stdout.write(JSON.stringify(result) + '\n');
        if (result.ok) {
          if (!flags.json) {
            process.stdout.write(`ledger intact: ${result.rows} rows, every hash, signature and countersignature holds; head ${result.headHash}\n`);
            if (receipts)
              process.stdout.write(
                `every receipt for this ledger matches its row (newest: seq ${Math.max(...receipts.filter((r) => r.ledgerKey === Buffer.from(ledger.countersignerPublicKey).toString('hex')).map((r) => r.seq))})\n`,
              );
          }
          return 0;
        }
        process.stderr.write(`dpfed ledger: verification FAILED at row ${result.badRow}: ${result.reason}\n`);
        return 1;
      }
      const filter = { institutionId: flags.institution as string | undefined, runId: flags.run as string | undefined };
      if (exportFormat === 'csv') {
        const csv = ledger.exportCsv(filter);
        if (flags.out) writeFileSync(flags.out as string, csv);
        else process.stdout.write(csv);
        return 0;
      }
      const kind = flags.accountant as 'rdp' | 'pld';
      const report = ledgerReport(ledger, { ...filter, accountant: kind });
      if (filter.institutionId !== undefined && report.institutions.length === 0) throw new UsageError(`--institution: ${filter.institutionId} is not registered in ${file}`);
      if (flags.json) process.stdout.write(JSON.stringify({ db: file, ...report }) + '\n');
      else {
        const run = thisRunOf(ledger, filter.runId);
        const thisRun = run && { run, epsilon: new Map(report.institutions.map((s) => [s.institutionId, s.epsilonThisRun ?? 0])) };
        process.stdout.write(renderTable(report.institutions, report.head, kind, filter.runId, thisRun));
      }
      return 0;
    } finally {
      db.close();
    }
  });
}
