// A worker thread of `dpfed sim` (started by sim-worker-pool.ts through privacy/typescript-worker.ts):
// holds the pooled data from workerData and runs the jobs the pool sends it, one at a time, answering
// each with its rows or its error.
import { parentPort, workerData } from 'node:worker_threads';
import { SimJobRunner } from './sim-job-runner.ts';
import type { SimWorkerData, SimWorkerReply, SimWorkerRequest } from './sim-worker-pool.ts';

const { data, transport, backend } = workerData as SimWorkerData;
const runner = new SimJobRunner(data, transport, backend);
const port = parentPort!;
let queue = Promise.resolve();
port.on('message', (request: SimWorkerRequest) => {
  queue = queue.then(async () => {
    let reply: SimWorkerReply;
    try {
      reply = { jobId: request.job.id, rows: await runner.run(request.job) };
    } catch (error) {
      reply = { jobId: request.job.id, error: (error as Error).stack ?? String(error) };
    }
    port.postMessage(reply);
  });
});
port.postMessage({ ready: true });
