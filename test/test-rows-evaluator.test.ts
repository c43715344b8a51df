// The evaluator over rows held in the process (simulations/test-rows-evaluator.ts): a simulation scores each
// committed model with scores(), which reuses the logits of the candidate the coordinator just evaluated when
// the parameters are that candidate's, and computes them otherwise; both give what scoreModel computes.
import { describe, expect, it } from 'vitest';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import { parseModelSpec } from '@dpfed/proto/model-spec';
import { scoreModel } from '@dpfed/simulations/sim-scoring';
import { testRowsEvaluator } from '@dpfed/simulations/test-rows-evaluator';
import { bankSlices, prepareBank, wasmTf } from './helpers/federation-fixture.ts';

describe('testRowsEvaluator', () => {
  it('scores() equals scoreModel for the candidate it evaluated and for any other parameters', async () => {
    const tf = await wasmTf();
    const { validation: rows } = await prepareBank(bankSlices(1, { rowsPerBank: 2000, seed: 'rows-evaluator' })[0]);
    const spec = parseModelSpec({ kind: 'mlp', inputDim: rows.dim, hidden: [{ units: 8, activation: 'relu' }] });
    const reference = new LocalTrainer(tf, spec, { noiseWorker: false });
    const evaluator = testRowsEvaluator(tf, spec, rows);
    try {
      const candidate = new Float32Array(reference.network.size).map((_, i) => Math.sin(i) * 0.3);
      const other = candidate.map((v, i) => (i === 5 ? v + 0.5 : v));
      await evaluator.evaluate(candidate, spec, { bins: 64, logitRange: 16 } as never);
      expect(evaluator.scores(candidate)).toEqual(scoreModel(reference, candidate, rows));
      // a copy of the candidate (as read back from the store) is the candidate
      expect(evaluator.scores(Float32Array.from(candidate))).toEqual(scoreModel(reference, candidate, rows));
      const otherScores = evaluator.scores(other);
      expect(otherScores).toEqual(scoreModel(reference, other, rows));
      expect(otherScores).not.toEqual(scoreModel(reference, candidate, rows));
    } finally {
      evaluator.close?.();
      reference.dispose();
    }
  });
});
