// Runs one job of a sweep (a federated setting or a baseline) on the pooled data, in whichever thread
// holds this runner. Partitions are computed once per seed and reused by the jobs that share them.
import { selectBackend, type BackendName } from '@dpfed/client/tf-backend';
import { runBaseline } from './baseline-runs.ts';
import { runFederated } from './federated-run.ts';
import type { TransportName } from './federation-transport.ts';
import { parseSplit } from './institution-split.ts';
import type { SimJob } from './sim-grid.ts';
import type { SimData } from './sim-data.ts';
import { partitionData, type Partition } from './sim-partition.ts';
import type { SimRecord } from './sim-result.ts';

type Tf = typeof import('@dpfed/client/tfjs');

export class SimJobRunner {
  private tf: Tf | null = null;
  private readonly partitions = new Map<string, Partition>();

  constructor(
    private readonly data: SimData,
    private readonly transport: TransportName,
    /** The TensorFlow.js backend the institutions train with (`dpfed sim --backend`). */
    private readonly backend: BackendName = 'wasm',
  ) {}

  private partitionFor(job: SimJob): Partition {
    const s = job.setting;
    const key = JSON.stringify([s.split, s.institutions, job.testShare, s.seed]);
    let partition = this.partitions.get(key);
    if (!partition) {
      partition = partitionData(this.data, { split: parseSplit(s.split), institutions: s.institutions, testShare: job.testShare, seed: String(s.seed) });
      this.partitions.set(key, partition);
    }
    return partition;
  }

  async run(job: SimJob): Promise<SimRecord[]> {
    this.tf ??= (await selectBackend(this.backend)).tf;
    const partition = this.partitionFor(job);
    if (job.setting.baseline === 'federated') return [await runFederated({ tf: this.tf, job, data: this.data, partition, transport: this.transport })];
    return runBaseline({ tf: this.tf, job, data: this.data, partition });
  }
}
