// @dpfed/simulations: whole federations in one process (the real coordinator, strategies, DP, secure
// aggregation and ε ledgers over in-memory links), sweeps over their settings, and their results and plots.
// `dpfed sim` (the dpfed package) is its command; a researcher may run sweeps from code through this entry.
// Every module is also importable by its own path ('@dpfed/simulations/<module>').
export { runSweep, ExistingResultsError, type SweepSummary } from './sim-sweep.ts';
export { runFederated } from './federated-run.ts';
export { expandGrid, parseEpsilons, parseModels, parseShard, type SweepSpec } from './sim-grid.ts';
export { loadSimCsv, SimDataError } from './sim-data.ts';
export { parseSplit, splitName } from './institution-split.ts';
export { partitionData } from './sim-partition.ts';
export { DEFAULT_TRANSPORT, TRANSPORTS, type TransportName } from './federation-transport.ts';
export { readResults, writeResults, mergeRows, RESULTS_CSV, ResultsFileError } from './sim-results-file.ts';
export type { SimRecord } from './sim-result.ts';
export { writeSimPlots } from './sim-plots.ts';
