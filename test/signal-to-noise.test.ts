// The warning when DP noise drowns the signal: the plan's estimate (privacy/signal-to-noise.ts) fires for an
// MLP with Adam at ε = 1 on small data and not for the demo's defaults; `dpfed coordinator` prints it on
// stderr before it listens; the run watch warns once after evaluations that do not beat the first.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parameterCount } from '@dpfed/proto/model-spec';
import { EvaluationWatch, estimateForTask, estimateSignalToNoise, STEP_RATIO_LIMIT } from '@dpfed/privacy/signal-to-noise';
import { bankCsvText, bankSlices, DPFED_BIN, runConfig, tempDir } from './helpers/federation-fixture.ts';
import { writeFileSync } from 'node:fs';

/** The estimate for a run given by flags, with `institutions` banks of `rows` training rows each. */
function estimate(flags: string[], institutions: number, rows?: number) {
  const config = runConfig(['--privacy', 'record', '--rounds', '10', '--min-clients', String(institutions), ...flags]);
  return estimateForTask(config.task, { parameters: parameterCount(config.modelSpec), logistic: config.modelSpec.kind === 'logistic', institutions, rowsPerInstitution: rows })!;
}

describe('signal-to-noise estimate', () => {
  it('does not fire for the demo defaults (MLP 64,32, Adam, ε = 3, 4 banks of about 2 000 training rows)', () => {
    // the demo: 11 489 rows, 10 % held out, 4 banks, 20 % of each for validation
    const rows = ((11489 * 0.9) / 4) * 0.8;
    const demo = estimate(['--epsilon', '3', '--evaluate-every', '5'], 4, rows);
    expect(demo.hopeless).toBe(false);
    expect(demo.warning).toBeNull();
    expect(demo.stepRatio).toBeLessThan(STEP_RATIO_LIMIT / 2);
    // the coordinator's own estimate, which knows no row count (expected batch = --batch-size), is quiet too
    expect(estimate(['--epsilon', '3', '--evaluate-every', '5'], 3).warning).toBeNull();
  });

  it.each([300, 600, 1000])('fires for an MLP with Adam at ε = 1 with %i rows per institution, and names what to change', (rows) => {
    const small = estimate(['--epsilon', '1', '--optimizer', 'adam'], 3, rows * 0.8);
    expect(small.hopeless).toBe(true);
    expect(small.stepRatio).toBeGreaterThan(STEP_RATIO_LIMIT);
    expect(small.warning).toMatch(/^DP noise drowns the signal: σ \d+\.\d+ over 4097 parameters/);
    expect(small.warning).toMatch(/--model logistic --optimizer sgd/);
    expect(small.warning).toMatch(/larger --sample-rate/);
    expect(small.warning).toMatch(/fewer --rounds/);
    expect(small.warning).toMatch(/more data/);
  });

  it('a logistic model on the same small data is not reported hopeless (its noise per coordinate is √(4097/31) ≈ 11 times smaller)', () => {
    const mlp = estimate(['--epsilon', '1'], 3, 600 * 0.8);
    const logistic = estimate(['--epsilon', '1', '--model', 'logistic', '--optimizer', 'sgd'], 3, 600 * 0.8);
    expect(mlp.stepRatio / logistic.stepRatio).toBeCloseTo(Math.sqrt(4097 / 31), 6);
    expect(logistic.hopeless).toBe(false);
  });

  it('follows its formula: ρ = σ·√d / E[B] per step, ρ / √(steps·rounds·institutions) over the run', () => {
    const r = estimateSignalToNoise({
      mode: 'record',
      noiseMultiplier: 2,
      sampleRate: 0.01,
      batchSize: 64,
      rowsPerInstitution: 1000,
      stepsPerRound: 25,
      rounds: 4,
      institutions: 1,
      parameters: 100,
      optimizer: 'sgd',
      logistic: true,
    });
    expect(r.expectedBatch).toBeCloseTo(10, 12);
    expect(r.stepRatio).toBeCloseTo(2, 12); // 2 · 10 / 10
    expect(r.runRatio).toBeCloseTo(0.2, 12); // 2 / √100
    const c = estimateSignalToNoise({ mode: 'client', noiseMultiplier: 1, clientSampleRate: 0.5, institutions: 10, rounds: 4, parameters: 400, logistic: true });
    expect(c.stepRatio).toBeCloseTo(4, 12); // 1 · 20 / 5
    expect(c.runRatio).toBeCloseTo(2, 12);
    expect(c.hopeless).toBe(true);
    expect(() => estimateSignalToNoise({ mode: 'client', noiseMultiplier: 0, clientSampleRate: 1, institutions: 3, rounds: 1, parameters: 1, logistic: true })).toThrow(/noiseMultiplier/);
  });
});

describe('evaluation watch', () => {
  it("warns once when K evaluations stay within the first one's auc_stderr, and never after an improvement", () => {
    const watch = new EvaluationWatch(3);
    expect(watch.observe({ round: 1, evaluated: true, auc: 0.6, aucStderr: 0.05 })).toBeNull();
    expect(watch.observe({ round: 2, evaluated: false, auc: Number.NaN })).toBeNull();
    expect(watch.observe({ round: 3, evaluated: true, auc: 0.63, aucStderr: 0.05 })).toBeNull();
    const warning = watch.observe({ round: 4, evaluated: true, auc: 0.58, aucStderr: 0.05 });
    expect(warning).toMatch(/^no improvement after 3 evaluations: global AUC 0\.5800 at round 4 is within the first evaluation's auc_stderr \(0\.6000 ± 0\.0500 at round 1\)/);
    expect(watch.observe({ round: 5, evaluated: true, auc: 0.59 })).toBeNull();

    const learning = new EvaluationWatch(3);
    learning.observe({ round: 1, auc: 0.6, aucStderr: 0.05 });
    expect(learning.observe({ round: 2, auc: 0.7, aucStderr: 0.05 })).toBeNull();
    expect(learning.observe({ round: 3, auc: 0.6, aucStderr: 0.05 })).toBeNull();
    expect(learning.observe({ round: 4, auc: 0.6, aucStderr: 0.05 })).toBeNull();
  });
});

describe('dpfed coordinator', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** stderr of a coordinator up to its `listening` event (then it is stopped). */
  async function stderrUntilListening(flags: string[], db: string): Promise<string> {
    const child = spawn(process.execPath, [DPFED_BIN, 'coordinator', '--insecure', '--port', '0', '--db', join(dir, db), '--json', '--key-dir', join(dir, 'keys'), ...flags], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('"event":"listening"')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${stderr}`)));
      });
    } finally {
      child.kill('SIGTERM');
    }
    return stderr;
  }

  it('warns on stderr before the run when the plan is hopeless, and not for a workable plan', async () => {
    const hopeless = await stderrUntilListening(['--epsilon', '1', '--batch-size', '8', '--sample-rate', '0.01'], 'a.sqlite');
    expect(hopeless).toMatch(/dpfed coordinator: warning: DP noise drowns the signal: .*Consider: --model logistic --optimizer sgd/);
    const fine = await stderrUntilListening(['--epsilon', '3'], 'b.sqlite');
    expect(fine).not.toMatch(/drowns the signal/);
  }, 60_000);

  it('dpfed demo on small data (3 banks of 600 rows) with an MLP and Adam at ε = 1 warns before it starts the banks', async () => {
    const csv = join(dir, 'small.csv');
    writeFileSync(csv, bankCsvText(bankSlices(1, { rowsPerBank: 1800, seed: 'small-demo' })[0]));
    const demo = spawn(process.execPath, [DPFED_BIN, 'demo', '--db', join(dir, 'demo.sqlite'), '--data', csv, '--institutions', '3', '--epsilon', '1', '--optimizer', 'adam', '--insecure'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    demo.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => demo.on('exit', () => resolve()));
    try {
      // the warning comes before the coordinator is started; stop the demo once it is listening
      await new Promise<void>((resolve, reject) => {
        demo.stdout!.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('demo: coordinator on')) resolve();
        });
        void exited.then(() => reject(new Error(`demo exited: ${stderr}`)));
      });
    } finally {
      demo.kill('SIGINT');
      await exited;
    }
    expect(stderr).toMatch(/demo: warning: DP noise drowns the signal: σ \d+\.\d+ over 4097 parameters with an expected batch of \d+\.\d .*Consider: --model logistic --optimizer sgd/);
  }, 60_000);
});
