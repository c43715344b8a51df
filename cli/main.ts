// `dpfed`: one entry point, one module per subcommand, each exporting main(argv) → exit code.
type CommandModule = { main(argv: string[]): Promise<number> };

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  coordinator: { summary: 'run a federation coordinator (gRPC server)', load: () => import('./coordinator-command.ts') },
  client: { summary: 'run an institution node that trains on its own CSV data', load: () => import('@dpfed/client/client-command') },
  demo: { summary: 'coordinator + 4 banks as separate processes on the card-fraud data', load: () => import('./demo-command.ts') },
  privacy: { summary: 'privacy accounting: epsilon of mechanism events, noise calibration', load: () => import('./privacy-command.ts') },
  enrol: { summary: "the coordinator's allow-list of institutions: add, list, revoke", load: () => import('./enrol-command.ts') },
  certs: { summary: 'the federation CA: create it, issue server and institution certificates', load: () => import('./certs-command.ts') },
  identity: { summary: "an institution's identity key: create it, print the public key to enrol", load: () => import('./identity-command.ts') },
  schema: { summary: 'public data schema: draft one from a CSV (infer), print its hash (hash)', load: () => import('./schema-command.ts') },
  ledger: { summary: 'read, verify and export the epsilon ledger (read-only)', load: () => import('./ledger-command.ts') },
  console: { summary: 'compliance console: a web page over the epsilon ledger, budgets, rounds and the audit chain', load: () => import('./console-command.ts') },
  model: { summary: "export a run's global model as a TensorFlow.js model folder with preprocessing and model card", load: () => import('./model-command.ts') },
  predict: { summary: 'score a CSV with an exported model (one probability per row)', load: () => import('./predict-command.ts') },
  evaluate: { summary: 'AUC, PR-AUC, log loss, threshold metrics and calibration of an exported model on a labelled CSV', load: () => import('./evaluate-command.ts') },
  sim: { summary: 'simulate federations in one process: sweeps over epsilon, rounds, dropout and models, with local and centralised baselines', load: () => import('./sim-command.ts') },
  bench: { summary: 'measure speed figures; prints one JSON object', load: () => import('./bench-command.ts') },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length)) + 4;
  return [
    'dpfed: federated learning with differential privacy, an epsilon ledger and secure aggregation',
    '',
    'Usage: dpfed <command> [flags]      dpfed <command> --help',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topHelp());
    return 0;
  }
  if (name === '--version') {
    process.stdout.write('dpfed 0.1.0 (wire protocol dpfed.v1)\n');
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`dpfed: unknown command "${name}"\n\n${topHelp()}`);
    return 2;
  }
  const module = await command.load();
  return module.main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`dpfed: ${error instanceof Error ? error.message : String(error)}\n`);
    if (process.env.DPFED_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  },
);
