// V8 heap sizing for dpfed's own processes (coordinator, institutions, demo, bench).
//
// A federated round moves each model through several short-lived Buffers: grpc-js frames every message
// it sends into a fresh Buffer and reassembles every message it receives into another. With V8's default
// sizing the old generation starts tiny (a few MB of live objects), and those backing stores count
// towards its growth, so V8 runs a full mark-compact almost every round: on a 2-core server
// at 100k parameters and 10 institutions, 10-13 mark-compacts in 21 rounds and 6-7 ms of GC per round on
// each side; with the old generation's initial limit at 128 MB there were none, and the coordinator's CPU per
// round went from 24-43 ms to 20-23 ms and the institutions' from 37-40 ms to 27-30 ms. The limit is where
// V8 starts collecting, not a cap: live memory stays what it is, and a process that needs more grows as
// before.
//
// Measured again with everything else in place (packed frames, pooled buffers): without the flag a round
// took 17-23 ms at 100k and 125-137 ms at 1M, with it 17 ms and 103-104 ms.
//
// The flag cannot be set from inside a running process (v8.setFlagsFromString has no effect on the heap's
// configured limits; NODE_OPTIONS refuses it), so it rides on the processes dpfed starts itself: the npm
// scripts (`npm run demo`, `npm run bench`) and the children the demo and the bench spawn, which carry the
// same text (test/node-heap.test.ts). The `dpfed` launcher keeps a plain `node` shebang: `env -S`, the
// only way to put a flag there, is missing from BusyBox (Alpine images) and from npm's Windows shims. An
// operator running `dpfed coordinator` or `dpfed client` for long starts it as
// `node --initial-old-space-size=128 bin/dpfed.js …` (README), and an institution that embeds
// the SDK passes the flag to its own `node`.
export const NODE_HEAP_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
