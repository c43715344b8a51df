// A fault-injection hook for the tests in test/faults-*.test.ts, and nothing else. When the environment
// variable DPFED_TEST_EXIT_AT is "<point>@<round>", the process kills itself with SIGKILL the moment it
// reaches that point of that round: no cleanup, no flush, exactly as a crash or an OOM kill would end it.
// Unset (always, outside those tests) it does nothing. The points are named where they are called:
//   institution (client-sdk/training-release.ts, secure-sum-participant.ts, evaluation-release.ts):
//     train (trained, nothing recorded or sent yet), <collection>/advertise (its release is in its ledger,
//     its keys not yet sent), <collection>/share-keys, <collection>/masked-input, <collection>/unmask (on
//     receiving that task), evaluate (evaluated locally, nothing recorded), with <collection> "update"
//     (training) or "evaluation";
//   coordinator (coordinator/round-machine.ts, coordinator/secure-collection.ts): waiting (the wait for
//     institutions is over and they are sampled, no task posted yet), training (the phase opens),
//     <collection>/advertise, <collection>/share-keys, <collection>/masked-input, <collection>/unmask (after
//     that phase's answers arrived), evaluating (the phase opens), committing (everything revealed and
//     recorded in the ledger, before the round's commit).

/** SIGKILLs this process when DPFED_TEST_EXIT_AT names `point` at `round` (test hook; see the file's header). */
export function exitAtTestPoint(point: string, round: number): void {
  const at = process.env.DPFED_TEST_EXIT_AT;
  if (at !== undefined && at === `${point}@${round}`) process.kill(process.pid, 'SIGKILL');
}
