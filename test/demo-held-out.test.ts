// The demo's held-out slice and final model: rows set aside by a seeded hash before the split reach no
// bank; at the end the demo exports the final model and scores it on those rows (`model`, `heldOut`).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HELD_OUT_SHARE, isHeldOut } from 'dpfed/demo-held-out';
import { NODE_HEAP_FLAGS } from 'dpfed/node-heap';
import { evaluate, loadModel } from '@dpfed/client/model-file';
import { DPFED_BIN, FRAUD_CSV, tempDir } from './helpers/federation-fixture.ts';

const dataRows = () =>
  readFileSync(FRAUD_CSV, 'utf8')
    .split(/\r?\n/)
    .slice(1)
    .filter((l) => l.trim() !== '');

describe('demo held-out slice', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the seeded hash holds out about 10 % of the rows, the same ones for a seed and others for another seed', () => {
    const rows = dataRows();
    const a = rows.filter((r) => isHeldOut(r, '1'));
    const share = a.length / rows.length;
    // binomial with n ≈ 11 500 and p = 0.1: the standard deviation of the share is about 0.003
    expect(Math.abs(share - HELD_OUT_SHARE)).toBeLessThan(0.015);
    expect(rows.filter((r) => isHeldOut(r, '1'))).toEqual(a);
    const b = new Set(rows.filter((r) => isHeldOut(r, '2')));
    expect(a.filter((r) => b.has(r)).length).toBeLessThan(a.length / 2);
  });

  it('a demo run exports its final model and scores it on rows no bank holds', () => {
    const db = join(dir, 'demo.sqlite');
    const p = spawnSync(
      process.execPath,
      [...NODE_HEAP_FLAGS, DPFED_BIN, 'demo', '--json', '--db', db, '--rounds', '2', '--institutions', '3', '--privacy', 'off', '--aggregation', 'plain', '--local-steps', '10', '--insecure'],
      { encoding: 'utf8', timeout: 240_000 },
    );
    expect(p.status, p.stderr).toBe(0);
    const summary = JSON.parse(p.stdout) as { model: string; heldOut: { rows: number; positives: number; auc: number; logLoss: number; prAuc: number }; runId: string };
    expect(summary.model).toBe(`${db}.model`);
    expect(readdirSync(summary.model).sort()).toEqual(['SHA256SUMS', 'model-card.json', 'model.json', 'preprocessing.json', 'weights.bin']);
    const heldOutCsv = join(`${db}.banks`, 'held-out.csv');
    const heldOut = readFileSync(heldOutCsv, 'utf8')
      .split('\n')
      .slice(1)
      .filter((l) => l !== '');
    expect(summary.heldOut.rows).toBe(heldOut.length);
    expect(heldOut.every((r) => isHeldOut(r, '1'))).toBe(true);
    // no held-out row is in any bank's file
    const held = new Set(heldOut);
    for (let b = 1; b <= 3; b++) {
      const bank = readFileSync(join(`${db}.banks`, `bank-${b}.csv`), 'utf8')
        .split('\n')
        .slice(1)
        .filter((l) => l !== '');
      expect(bank.some((r) => held.has(r))).toBe(false);
    }
    expect(summary.heldOut.auc).toBeGreaterThan(0.5);
    expect(p.stderr).toMatch(/final model exported to .*demo\.sqlite\.model/);
    expect(p.stderr).toMatch(/held-out evaluation .*AUC 0\.\d{4}, PR-AUC 0\.\d{4}, log loss \d\.\d{4}/);
    expect(existsSync(join(summary.model, 'model-card.json'))).toBe(true);
  }, 300_000);

  it('the figures are those dpfed evaluate computes from the exported folder', async () => {
    const db = join(dir, 'demo.sqlite');
    const model = await loadModel(`${db}.model`);
    const report = await evaluate(model, join(`${db}.banks`, 'held-out.csv'), { labelColumn: 'label' });
    const p = spawnSync(process.execPath, [DPFED_BIN, 'evaluate', '--model', `${db}.model`, '--data', join(`${db}.banks`, 'held-out.csv'), '--label-column', 'label', '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(p.status, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ auc: report.auc, rows: report.rows, logLoss: report.logLoss });
  }, 120_000);
});
