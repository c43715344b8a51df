// V8 heap sizing for dpfed's own processes (coordinator, institutions, demo, bench).
//
// A federated round moves each model through several short-lived Buffers: grpc-js frames every message
// it sends into a fresh Buffer and reassembles every message it receives into another. With V8's default
// sizing the old generation starts tiny (a few MB of live objects here), and those backing stores count
// towards its growth, so V8 ran a full mark-compact almost every round: measured on this 2-core machine
// at 100k parameters and 10 institutions, 10-13 mark-compacts in 21 rounds and 6-7 ms of GC per round on
// each side; with the old generation's initial limit at 128 MB there were none, the coordinator's CPU per
// round fell from 24-43 ms to 20-23 ms and the institutions' from 37-40 ms to 27-30 ms. The limit is where
// V8 starts collecting, not a cap: live memory stays what it is, and a process that needs more grows as
// before.
//
// The flag cannot be set from inside a running process (v8.setFlagsFromString has no effect on the heap's
// configured limits; NODE_OPTIONS refuses it), so it rides on every process dpfed starts: the `dpfed`
// launcher's shebang, the npm scripts, and the children the demo and the bench spawn. These places carry
// the same text, checked by test/node-heap.test.ts. An institution that embeds the SDK in its own process
// can pass the flag to its own `node`.
export const NODE_HEAP_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
