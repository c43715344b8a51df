// The sweep grid of `dpfed sim`: lists of ε, rounds, institutions, dropout, models, seeds, privacy modes
// and aggregations expanded into settings, each with a stable id, and the slice of them one shard runs.
//
// Every sweep holds, per (institutions, model, rounds, seed) over the same data and split:
// - `centralised`: all institutions' training rows pooled, no DP (the upper reference);
// - `local`: each institution alone, no DP (one setting, a row per institution and scoring);
// - `federated` without DP (ε = inf), per dropout and aggregation;
// - `federated` with DP at each finite ε, per privacy mode, dropout and aggregation.
// Baselines are not repeated per ε, dropout or aggregation. A pair the federation refuses (client-level
// DP with plain aggregation) is left out and listed in `refused`.
import { createHash } from 'node:crypto';
import { canonicalJson } from '@dpfed/proto/canonical-json';
import type { Baseline, SimResultRow } from './sim-result.ts';

export type PrivacyChoice = 'record' | 'client';
export type AggregationChoice = 'plain' | 'secagg';

export interface SweepSpec {
  /** Identity of the data (source, label column, schema hash): part of every setting's id. */
  data: string;
  split: string;
  /** Institution counts to deal the rows out to (one value for a natural split). */
  institutions: number[];
  testShare: number;
  epsilons: (number | null)[];
  delta: number;
  rounds: number[];
  dropout: number[];
  models: string[];
  seeds: number[];
  privacy: PrivacyChoice[];
  aggregation: AggregationChoice[];
  /** Run flags shared by every setting (local steps, batch size, learning rate, …), as `dpfed coordinator` takes them. */
  trainingArgs: string[];
}

/** One grid point: what SimResultRow records about it, before it runs. */
export type SimSetting = Pick<SimResultRow, 'baseline' | 'epsilon' | 'delta' | 'privacy' | 'aggregation' | 'model' | 'rounds' | 'institutions' | 'dropout' | 'split' | 'seed'>;

export interface SimJob {
  /** Stable id: SHA-256 of the setting's canonical JSON with the data and training flags, 16 hex characters. */
  id: string;
  /** Position in the whole grid (shards take index mod N). */
  index: number;
  setting: SimSetting;
  testShare: number;
  trainingArgs: string[];
}

export interface Grid {
  jobs: SimJob[];
  /** Combinations left out, with the reason. */
  refused: string[];
}

export function settingId(setting: SimSetting, spec: Pick<SweepSpec, 'data' | 'testShare' | 'trainingArgs'>): string {
  const body = canonicalJson({ setting, data: spec.data, testShare: spec.testShare, training: spec.trainingArgs });
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}

export function expandGrid(spec: SweepSpec): Grid {
  const settings: SimSetting[] = [];
  const refused: string[] = [];
  const finite = [...new Set(spec.epsilons.filter((e): e is number => e !== null))].sort((a, b) => a - b);
  for (const seed of spec.seeds) {
    for (const institutions of [...new Set(spec.institutions)]) {
      const common = { institutions, split: spec.split };
      const baseline = (b: Baseline, model: string, rounds: number): SimSetting => ({
        ...common,
        baseline: b,
        epsilon: null,
        delta: null,
        privacy: 'off',
        aggregation: 'plain',
        model,
        rounds,
        dropout: 0,
        seed,
      });
      for (const model of spec.models) {
        for (const rounds of spec.rounds) {
          settings.push(baseline('centralised', model, rounds), baseline('local', model, rounds));
          for (const dropout of spec.dropout) {
            for (const aggregation of spec.aggregation) {
              const federated = { ...common, baseline: 'federated' as const, model, rounds, dropout, seed, aggregation };
              settings.push({ ...federated, epsilon: null, delta: null, privacy: 'off' });
              for (const privacy of spec.privacy) {
                if (privacy === 'client' && aggregation === 'plain') {
                  refused.push('privacy client with aggregation plain: client-level DP needs secure aggregation');
                  continue;
                }
                for (const epsilon of finite) settings.push({ ...federated, epsilon, delta: spec.delta, privacy });
              }
            }
          }
        }
      }
    }
  }
  const seen = new Set<string>();
  const jobs: SimJob[] = [];
  for (const setting of settings) {
    const id = settingId(setting, spec);
    if (seen.has(id)) continue;
    seen.add(id);
    jobs.push({ id, index: jobs.length, setting, testShare: spec.testShare, trainingArgs: spec.trainingArgs });
  }
  return { jobs, refused: [...new Set(refused)] };
}

/** `--shard I/N`, 0-based: I in 0..N−1 (the Kubernetes Indexed Job's JOB_COMPLETION_INDEX). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m) throw new Error(`expected I/N (0-based: I in 0..N-1), got "${text}"`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new Error(`expected I/N with N >= 1 and 0 <= I < N (0-based), got "${text}"`);
  return { index, count };
}

/** The jobs of shard `index` of `count`: those whose grid index mod count is index. */
export function shardJobs(jobs: SimJob[], shard: { index: number; count: number }): SimJob[] {
  return jobs.filter((j) => j.index % shard.count === shard.index);
}

/** `--epsilons 0.5,1,inf`: positive numbers, `inf` for DP off. */
export function parseEpsilons(values: string[]): (number | null)[] {
  return values.map((v) => {
    if (v === 'inf' || v === 'Infinity') return null;
    const e = Number(v);
    if (!(e > 0 && Number.isFinite(e))) throw new Error(`expected positive numbers or inf, got "${v}"`);
    return e;
  });
}

/**
 * `--models logistic,mlp:64,32`: commas separate models, but an mlp's widths are comma-separated too,
 * so a piece that is only digits continues the mlp before it.
 */
export function parseModels(values: string[]): string[] {
  const out: string[] = [];
  for (const piece of values) {
    if (/^\d+(?::(relu|tanh|sigmoid))?$/.test(piece) && out.length && out[out.length - 1].startsWith('mlp:') && !/:(relu|tanh|sigmoid)$/.test(out[out.length - 1])) {
      out[out.length - 1] += `,${piece}`;
    } else out.push(piece);
  }
  for (const m of out) if (m !== 'logistic' && !/^mlp:\d+(,\d+)*(:(relu|tanh|sigmoid))?$/.test(m)) throw new Error(`expected logistic or mlp:UNITS,UNITS[:relu|tanh|sigmoid], got "${m}"`);
  return [...new Set(out)];
}
