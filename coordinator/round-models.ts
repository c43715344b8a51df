// The models a run serves: the committed global model, and during a round's evaluation the candidate.
// Each has a random id that clients key their model cache on (never the version alone, which a re-run
// round reuses).
import { randomBytes } from 'node:crypto';
import { unflattenParameters, type ModelSpec } from '@dpfed/proto/model-spec';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { ParameterShape } from './result-checks.ts';
import { failedPrecondition } from './rpc-error.ts';

const freshId = () => randomBytes(12).toString('hex');

export class RoundModels {
  private globalModel: Float32Array;
  private candidateModel: Float32Array | null = null;
  private globalId = freshId();
  private candidateId = '';

  /** `version`: the committed model's version (its round; 0 for the initial model). */
  constructor(
    private readonly spec: ModelSpec,
    private readonly shapes: readonly ParameterShape[],
    initial: Float32Array,
    private versionValue: number,
  ) {
    this.globalModel = initial;
  }

  get global(): Float32Array {
    return this.globalModel;
  }

  get version(): number {
    return this.versionValue;
  }

  /** The round's aggregated model, served for evaluation (version = the round) until it is committed. */
  propose(candidate: Float32Array): void {
    this.candidateModel = candidate;
    this.candidateId = freshId();
  }

  /** The candidate becomes the global model of version `round`. */
  commit(round: number): void {
    if (!this.candidateModel) throw new Error(`round ${round}: no candidate model to commit`);
    this.globalModel = this.candidateModel;
    this.globalId = this.candidateId;
    this.candidateModel = null;
    this.versionValue = round;
  }

  /** The id of the model of `modelVersion` while `round` runs: the global model's, the candidate's, or '' for neither. */
  idOf(modelVersion: number, round: number): string {
    if (modelVersion === this.versionValue) return this.globalId;
    if (this.candidateModel && modelVersion === round) return this.candidateId;
    return '';
  }

  /** The model of `modelVersion` as tensors in spec order (views of the flat model, no copy). */
  tensors(modelVersion: number, round: number): NamedTensor[] {
    let flat: Float32Array;
    if (modelVersion === this.versionValue) flat = this.globalModel;
    else if (this.candidateModel && modelVersion === round) flat = this.candidateModel;
    else throw failedPrecondition(`envelope.model_version: version ${modelVersion} is not available (current ${this.versionValue})`);
    const views = unflattenParameters(this.spec, flat);
    return this.shapes.map(({ name, shape }) => ({ name, shape, dtype: 'FLOAT32', data: views.get(name)! }));
  }
}
