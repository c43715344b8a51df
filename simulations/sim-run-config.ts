// The RunConfig of a simulated federation, built by the same flag table and translation as `dpfed
// coordinator` (@dpfed/coordinator/run-flags), so a simulated setting runs exactly the plan a real one would:
// the sweep's shared training flags, then the setting's own values. Candidates are scored by the
// coordinator on the common test rows (the `--evaluation-data` mode), so institutions spend no ε on
// evaluation and every ε of a setting goes to training.
import { parseFlags } from '@dpfed/proto/command-flags';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import type { DataSchema } from '@dpfed/proto/data-schema';
import type { SimJob } from './sim-grid.ts';

/** The flags of the run table a sweep may set for all its settings (the rest come from the setting or are fixed). */
export const SHARED_RUN_FLAGS = [
  'local-steps',
  'batch-size',
  'learning-rate',
  'optimizer',
  'sample-rate',
  'clip-norm',
  'accountant',
  'update-clip-norm',
  'client-sample-rate',
  'secagg-threshold',
  'strategy',
  'proximal-mu',
  'server-learning-rate',
  'class-weight',
  'positive-rate',
  'weight-decay',
  'lr-schedule',
  'max-update-norm',
] as const;

/** The flag table those shared flags come from (defaults as for `dpfed coordinator`). */
export function sharedRunFlagSpecs() {
  const names = new Set<string>(SHARED_RUN_FLAGS);
  return runFlags({ rounds: 5, minClients: 3, privacy: 'off', aggregation: 'plain' }).filter((f) => names.has(f.name));
}

/** Institutions that sit out each round at this dropout fraction. */
export function droppedPerRound(institutions: number, dropout: number): number {
  return Math.round(dropout * institutions);
}

export function simRunConfig(job: SimJob, o: { features: number; schema: DataSchema; institutions: number }): RunConfig {
  const s = job.setting;
  const present = o.institutions - droppedPerRound(o.institutions, s.dropout);
  const argv = [
    ...job.trainingArgs,
    '--rounds',
    String(s.rounds),
    '--model',
    s.model,
    '--features',
    String(o.features),
    '--privacy',
    s.privacy,
    '--aggregation',
    s.aggregation,
    '--min-clients',
    String(Math.max(1, present)),
    '--wait-for',
    String(o.institutions),
    '--seed',
    String(s.seed),
    '--evaluation-data',
    'common test rows',
    ...(s.epsilon !== null ? ['--epsilon', String(s.epsilon)] : []),
    ...(s.delta !== null ? ['--delta', String(s.delta)] : []),
  ];
  const flags = runFlags({ rounds: s.rounds, minClients: present, privacy: s.privacy, aggregation: s.aggregation });
  return { ...runConfigFromFlags(parseFlags({ name: 'sim', summary: 'a simulated setting', flags }, argv)), schema: o.schema };
}
