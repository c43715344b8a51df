// The workspace packages of dpfed: which top-level folder is which npm package, which packages each may
// depend on (the enforced graph), files that belong to another package than their folder's history says,
// and the static fields of each package.json. apply.mjs and check.mjs read this table; apply.mjs writes
// every package's package.json and tsconfig.json from it (dependencies are computed from the imports), so
// a change to a package's manifest is made here, then `node tools/workspaces/apply.mjs`.

export const VERSION = '0.1.0';

/**
 * One package per folder. `mayUse`: the folders whose packages this one may import (anything else is a
 * forbidden edge: the codemod and the check refuse it). `publish: false` marks private packages.
 */
export const PACKAGES = [
  {
    dir: 'proto',
    name: '@dpfed/proto',
    description: 'dpfed wire contract: the gRPC service, message types, shared names, TLS and logging helpers',
    mayUse: [],
    assets: ['dpfed/**/*.proto'],
  },
  {
    dir: 'privacy',
    name: '@dpfed/privacy',
    description: 'dpfed privacy logic: clipping, noise, accountants, the signed ε ledger, secure-aggregation primitives',
    mayUse: ['proto'],
    refusedNpm: ['node-seal', '@tensorflow/tfjs'],
    // The CKKS plugin is loaded with import() only by runs that use --aggregation ckks (ckks-plugin.ts).
    optionalPeers: ['ckks'],
  },
  {
    dir: 'ckks',
    name: '@dpfed/ckks',
    description: 'Optional dpfed plugin: CKKS homomorphic aggregation (--aggregation ckks) through node-seal',
    mayUse: ['proto', 'privacy'],
  },
  {
    dir: 'client-sdk',
    name: '@dpfed/client',
    description: 'dpfed institution node: the client SDK (FederationClient, TfjsLearner, the ε ledger) and the dpfed-client command',
    mayUse: ['proto', 'privacy'],
    bin: { 'dpfed-client': 'bin/dpfed-client.js' },
    optionalPeers: ['ckks'],
    // native TensorFlow backends (--backend tensorflow|tensorflow-gpu), found at run time by tf-backend.ts;
    // their install downloads libtensorflow, so nothing installs them unless asked
    optionalNpmPeers: { '@tensorflow/tfjs-node': '^4.22.0', '@tensorflow/tfjs-node-gpu': '^4.22.0' },
    // what a bank must not install with the institution node (the full tfjs bundle: use ./tfjs.ts)
    refusedNpm: ['@tensorflow/tfjs', 'node-seal', 'fastify', 'vega', 'vega-lite', 'typescript', 'tsx', 'vitest'],
  },
  {
    dir: 'coordinator',
    name: '@dpfed/coordinator',
    description: 'dpfed coordinator: rounds, strategies, secure aggregation and the federation ledger over gRPC',
    mayUse: ['proto', 'privacy'],
    refusedNpm: ['node-seal'],
    optionalPeers: ['ckks'],
  },
  {
    dir: 'simulations',
    name: '@dpfed/simulations',
    description: 'dpfed simulations: whole federations in one process over in-memory links, sweeps over ε, rounds, models and dropouts, their results and plots (dpfed sim)',
    mayUse: ['proto', 'privacy', 'client-sdk', 'coordinator'],
  },
  {
    dir: 'console',
    name: '@dpfed/console',
    description: 'dpfed compliance console: the ledger as read-only web pages and a JSON API (fastify)',
    mayUse: ['proto', 'privacy', 'coordinator'],
    assets: ['static/*'],
  },
  {
    dir: 'cli',
    name: 'dpfed',
    description: 'Federated learning coordinator with differential privacy, an epsilon ledger and dropout-tolerant secure aggregation: the dpfed command',
    mayUse: ['proto', 'privacy', 'client-sdk', 'coordinator', 'simulations', 'console'],
    bin: { dpfed: 'bin/dpfed.js' },
    optionalPeers: ['ckks'],
  },
  {
    dir: 'bench',
    name: '@dpfed/bench',
    description: 'dpfed benchmarks (npm run bench); part of the source repository, not published',
    mayUse: ['proto', 'privacy', 'ckks', 'client-sdk', 'coordinator', 'simulations', 'console', 'cli'],
    publish: false,
    // The CLI's bench command loads bench modules by a computed specifier instead (cli/bench-command.ts).
    importHint: "the CLI loads bench modules with benchModule('name') in cli/bench-command.ts, never with an import",
  },
];

/** Folders of the private workspace root (not packages): they may import every package. */
export const ROOT_DIRS = ['test', 'examples', 'tools'];

/**
 * Files that moved to another package. The codemod moves a file still at its old place and points every
 * import of the old path at the new one.
 */
export const MOVES = [
  // CKKS and node-seal live in the optional plugin package
  // (privacy/ keeps what needs no encryption library: ckks-parameters.ts, ckks-key-binding.ts,
  // ckks-update-encoding.ts, and ckks-plugin.ts, the interface the client and the coordinator use)
  ['privacy/ckks.ts', 'ckks/ckks.ts'],
  ['privacy/ckks-byte-layouts.ts', 'ckks/ckks-byte-layouts.ts'],
  ['privacy/ckks-keys.ts', 'ckks/ckks-keys.ts'],
  ['privacy/ckks-runtime.ts', 'ckks/ckks-runtime.ts'],
  ['privacy/node-seal-types.ts', 'ckks/node-seal-types.ts'],
  // the institution's command ships with @dpfed/client (bin dpfed-client), with the flag helpers it uses
  ['cli/client-command.ts', 'client-sdk/client-command.ts'],
  ['cli/flags.ts', 'proto/command-flags.ts'],
  ['cli/schema-flag.ts', 'proto/schema-flag.ts'],
  ['cli/observability-flags.ts', 'proto/observability-flags.ts'],
  ['cli/tls-flags.ts', 'proto/tls-flags.ts'],
  // the run's plan from the coordinator's flags: `dpfed coordinator`, the demo and every simulated setting
  ['cli/run-flags.ts', 'coordinator/run-flags.ts'],
];

/**
 * Imports answered by another module for some importers: the client and the coordinator reach CKKS only
 * through privacy/ckks-plugin.ts, which loads the optional @dpfed/ckks package on first use.
 */
export const REDIRECTS = [{ target: 'ckks/ckks.ts', importers: ['client-sdk', 'coordinator', 'cli', 'console', 'simulations'], to: 'privacy/ckks-plugin.ts' }];

/** Development tools of the workspace root: never a dependency of a package. */
export const DEV_ONLY = ['typescript', 'tsx', 'vitest', 'vite', '@types/node', '@types/better-sqlite3'];

/** Exact versions the packages must declare (internals they rely on: README "internals we rely on"). */
export const PINNED = {
  '@grpc/grpc-js': '1.14.7',
  'node-seal': '6.0.3',
  '@tensorflow/tfjs-backend-wasm': '4.22.0',
};
