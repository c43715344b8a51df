// The plots step of `dpfed sim` and `dpfed sim merge`: simulations/sim-plots.ts over the results; a failure
// is said on stderr (the results files are written already) rather than thrown.
import { writeSimPlots } from '@dpfed/simulations/sim-plots';
import type { SimRecord } from '@dpfed/simulations/sim-result';

/** Draws the plots of `rows` into `outDir`; returns the files, or null (said on stderr) when drawing failed. */
export async function drawPlots(outDir: string, rows: SimRecord[], who: string): Promise<string[] | null> {
  try {
    return await writeSimPlots(outDir, rows);
  } catch (error) {
    process.stderr.write(`${who}: drawing the plots failed: ${(error as Error).message}\n`);
    return null;
  }
}
