// The update an institution releases is its trained model minus the global model it started from.
// A function of its own (not a loop inside the async task handler) so the engine optimises it: inline in
// produceRelease the loop ran at about 11 ns per parameter, here under 1 ns.

/** trained − global, in place in `trained`, which is returned. */
export function subtractGlobal(trained: Float32Array, global: Float32Array): Float32Array {
  if (trained.length !== global.length) throw new Error(`model delta: trained model has ${trained.length} parameters, the global model ${global.length}`);
  for (let i = 0; i < trained.length; i++) trained[i] -= global[i];
  return trained;
}
