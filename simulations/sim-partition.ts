// Which rows each party of a simulated setting holds, deterministic per seed:
// 1. the common test rows: a share (--test-share) of all rows, drawn before anything else; no
//    institution trains or validates on them, and every baseline is scored on them;
// 2. the rest is dealt out to the institutions (institution-split.ts);
// 3. each institution keeps a share of its own rows (OWN_SHARE) apart as its own held-out rows (what
//    the local baseline is also scored on: how an institution alone would judge its model); it trains on
//    the others, in the federation and alone alike.
// The centralised baseline pools every institution's training rows.
import { createHash } from 'node:crypto';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { splitInstitutions, type SplitSpec } from './institution-split.ts';
import { selectRows, SimDataError, type SimData } from './sim-data.ts';

/** The share of each institution's rows it holds out for itself. */
export const OWN_SHARE = 0.2;

export interface SimInstitution {
  id: string;
  train: Dataset;
  own: Dataset;
}

export interface Partition {
  test: Dataset;
  /** SHA-256 of the test rows (inputs and labels), 16 hex characters: identical for every result scored on them. */
  testFingerprint: string;
  institutions: SimInstitution[];
  /** Every institution's training rows together (the centralised baseline). */
  pooledTrain: Dataset;
}

/** SHA-256 of a dataset's inputs and labels, 16 hex characters. */
export function rowsFingerprint(data: Dataset): string {
  const hash = createHash('sha256');
  hash.update(Buffer.from(data.x.buffer, data.x.byteOffset, data.x.byteLength));
  hash.update(Buffer.from(data.y.buffer, data.y.byteOffset, data.y.byteLength));
  return hash.digest('hex').slice(0, 16);
}

export interface PartitionOptions {
  split: SplitSpec;
  institutions: number;
  testShare: number;
  seed: string;
}

export function partitionData(data: SimData, o: PartitionOptions): Partition {
  if (!(o.testShare > 0 && o.testShare < 1)) throw new SimDataError('--test-share', `must be in (0, 1), got ${o.testShare}`);
  const order = Array.from({ length: data.n }, (_, i) => i);
  new SeededRandom(`${o.seed}:sim-test-rows`).shuffle(order);
  const testCount = Math.round(o.testShare * data.n);
  const testRows = order.slice(0, testCount).sort((a, b) => a - b);
  const trainRows = Int32Array.from(order.slice(testCount)).sort();
  const test = selectRows(data, testRows);
  let positives = 0;
  for (let i = 0; i < test.n; i++) positives += test.y[i];
  if (positives === 0 || positives === test.n) throw new SimDataError('--test-share', `the ${test.n} test rows hold only one class; raise --test-share or use more rows`);
  const natural = data.group && data.groupNames ? { group: data.group, groupNames: data.groupNames } : undefined;
  const { ids, members } = splitInstitutions(trainRows, data.y, o.split, o.institutions, o.seed, natural);
  const pooled: number[] = [];
  const institutions = ids.map((id, k) => {
    const rows = Array.from(members[k]);
    new SeededRandom(`${o.seed}:sim-own-rows:${id}`).shuffle(rows);
    const ownCount = Math.max(1, Math.round(OWN_SHARE * rows.length));
    const own = rows.slice(0, ownCount).sort((a, b) => a - b);
    const train = rows.slice(ownCount).sort((a, b) => a - b);
    pooled.push(...train);
    return { id, train: selectRows(data, train), own: selectRows(data, own) };
  });
  return {
    test,
    testFingerprint: rowsFingerprint(test),
    institutions,
    pooledTrain: selectRows(
      data,
      pooled.sort((a, b) => a - b),
    ),
  };
}
