// The tfjs-wasm heap view fenced in client-sdk/tfjs-wasm-heap.ts: active on the pinned tfjs-wasm (an upgrade
// that changes typedArrayFromHeap fails here), reading the same values as dataSync(), and absent elsewhere.
import { describe, expect, it } from 'vitest';
import { selectBackend } from '@dpfed/client/tf-backend';
import { tensorValues, wasmHeapReader } from '@dpfed/client/tfjs-wasm-heap';

describe('tfjs-wasm heap view', () => {
  it('is used on the wasm backend: views into one heap, holding what dataSync() returns', async () => {
    const { tf, name } = await selectBackend('wasm');
    expect(name).toBe('wasm');
    const reader = wasmHeapReader(tf);
    expect(reader).not.toBeNull();
    const a = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const b = tf.matMul(a, tf.tensor2d([[1], [-1], [0.5]]));
    const viewA = tensorValues(tf, a);
    const viewB = tensorValues(tf, b);
    expect(viewA.buffer).toBe(viewB.buffer); // both are views of the wasm heap, not copies
    expect(viewA.buffer).not.toBe(a.dataSync().buffer);
    expect([...viewB]).toEqual([...b.dataSync()]);
    expect([...viewB]).toEqual([0.5, 2]);
    tf.dispose([a, b]);
  });

  it('is not used on a backend without it: values come from dataSync()', async () => {
    const { tf, name } = await selectBackend('cpu');
    expect(name).toBe('cpu');
    expect(wasmHeapReader(tf)).toBeNull();
    const t = tf.tensor1d([3, -1, 0.25]);
    expect([...tensorValues(tf, t)]).toEqual([3, -1, 0.25]);
    t.dispose();
    await selectBackend('wasm');
  });
});
