// dpfed sim's sweep grid: expansion (baselines once per model, rounds and seed; federated without DP
// always; refused pairs left out), stable ids, and shard slices whose union is the grid, disjoint.
import { describe, expect, it } from 'vitest';
import { expandGrid, parseEpsilons, parseModels, parseShard, shardJobs, type SweepSpec } from '@dpfed/simulations/sim-grid';

const SPEC: SweepSpec = {
  data: 'csv:0123456789abcdef|label=label',
  split: 'iid',
  institutions: [5],
  testShare: 0.2,
  epsilons: [0.5, 1, null],
  delta: 1e-5,
  rounds: [5, 10],
  dropout: [0, 0.2],
  models: ['logistic', 'mlp:64,32'],
  seeds: [1, 2, 3],
  privacy: ['record', 'client'],
  aggregation: ['plain', 'secagg'],
  trainingArgs: ['--local-steps', '10'],
};

describe('sweep grid', () => {
  it('expands every combination once, with the baselines once per (model, rounds, seed)', () => {
    const { jobs, refused } = expandGrid(SPEC);
    const per = 2 * 2 * 3; // models × rounds × seeds
    const count = (baseline: string) => jobs.filter((j) => j.setting.baseline === baseline).length;
    expect(count('centralised')).toBe(per);
    expect(count('local')).toBe(per);
    // federated: per dropout × aggregation: one without DP, then record at 2 ε, and client at 2 ε with secagg only
    expect(count('federated')).toBe(per * 2 * (2 * (1 + 2) + 2));
    expect(jobs.filter((j) => j.setting.privacy === 'client' && j.setting.aggregation === 'plain')).toEqual([]);
    expect(refused).toEqual(['privacy client with aggregation plain: client-level DP needs secure aggregation']);
    for (const j of jobs.filter((x) => x.setting.privacy === 'off')) expect(j.setting.epsilon).toBeNull();
    expect(new Set(jobs.map((j) => j.id)).size).toBe(jobs.length);
    expect(jobs.map((j) => j.index)).toEqual(jobs.map((_, i) => i));
    for (const j of jobs) expect(j.id).toMatch(/^[0-9a-f]{16}$/);
  });

  it('gives a setting the same id in any sweep that holds it, and another id when the data or training flags differ', () => {
    const a = expandGrid(SPEC).jobs;
    const b = expandGrid({ ...SPEC, epsilons: [1], seeds: [2], models: ['mlp:64,32'] }).jobs;
    const byId = new Map(a.map((j) => [j.id, j.setting]));
    for (const j of b) expect(byId.get(j.id)).toEqual(j.setting);
    const other = expandGrid({ ...SPEC, data: 'csv:fedcba9876543210|label=label' }).jobs;
    expect(other.some((j) => byId.has(j.id))).toBe(false);
    const steps = expandGrid({ ...SPEC, trainingArgs: ['--local-steps', '20'] }).jobs;
    expect(steps.some((j) => byId.has(j.id))).toBe(false);
  });

  it('repeats the whole grid per institution count, keeping the ids of a one-count sweep', () => {
    const one = expandGrid(SPEC).jobs;
    const both = expandGrid({ ...SPEC, institutions: [5, 20] }).jobs;
    expect(both).toHaveLength(2 * one.length);
    expect(both.filter((j) => j.setting.institutions === 5).map((j) => j.id)).toEqual(one.map((j) => j.id));
    const twenty = both.filter((j) => j.setting.institutions === 20);
    expect(twenty.map((j) => ({ ...j.setting, institutions: 5 }))).toEqual(one.map((j) => j.setting));
    expect(new Set(both.map((j) => j.id)).size).toBe(both.length);
  });

  it('slices it into shards that are disjoint and together the whole grid', () => {
    const { jobs } = expandGrid(SPEC);
    for (const count of [1, 3, 7]) {
      const shards = Array.from({ length: count }, (_, index) => shardJobs(jobs, { index, count }));
      const all = shards.flat().map((j) => j.id);
      expect(new Set(all).size).toBe(all.length);
      expect(all.sort()).toEqual(jobs.map((j) => j.id).sort());
      for (const s of shards) expect(Math.abs(s.length - jobs.length / count)).toBeLessThanOrEqual(1);
    }
  });

  it('parses its list flags and shards, refusing bad values', () => {
    expect(parseEpsilons(['0.5', '1', 'inf'])).toEqual([0.5, 1, null]);
    expect(() => parseEpsilons(['0'])).toThrow(/positive numbers or inf/);
    expect(parseModels(['logistic', 'mlp:64', '32', 'mlp:16'])).toEqual(['logistic', 'mlp:64,32', 'mlp:16']);
    expect(parseModels(['mlp:64', '32:tanh'])).toEqual(['mlp:64,32:tanh']);
    expect(() => parseModels(['cnn'])).toThrow(/expected logistic or mlp/);
    expect(parseShard('0/4')).toEqual({ index: 0, count: 4 });
    expect(() => parseShard('4/4')).toThrow(/0-based/);
    expect(() => parseShard('1-4')).toThrow(/expected I\/N/);
  });
});
