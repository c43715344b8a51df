// The masking graph and Shamir threshold of a secure sum of n participants.
import { majorityThreshold, sizeMaskingGraph } from '@dpfed/privacy/masking-graph';

/**
 * Every pair masks for n <= 64; above, a SecAgg+ sparse graph sized from the tolerated dropout rate. The
 * threshold is at least a strict majority of each participant's share holders (so a coordinator telling
 * holders different stories cannot collect both kinds of share of one institution) and at least
 * thresholdFraction · n.
 */
export function secureSumGraph(n: number, o: { dropoutRate: number; thresholdFraction: number }): { graph: 'complete' | number; threshold: number } {
  const size = sizeMaskingGraph(n, o.dropoutRate);
  if (!size.complete) return { graph: size.neighbours, threshold: size.threshold };
  const wanted = Math.ceil(o.thresholdFraction * n);
  return { graph: 'complete', threshold: Math.min(n, Math.max(majorityThreshold(n - 1), wanted)) };
}
