// The `dpfed sim` plots: each plot the result rows have data for (simulations/sim-plot-specs.ts) written
// to the output folder as `<name>.svg` and `<name>.png`.
import fs from 'node:fs/promises';
import path from 'node:path';
import { renderSvg, svgToPng } from './sim-plot-render.ts';
import { simPlotSpecs, type SimPlotRow } from './sim-plot-specs.ts';

/** Writes the plots into `outDir` (created if missing) and returns the paths written, SVG then PNG per plot. */
export async function writeSimPlots(outDir: string, rows: SimPlotRow[]): Promise<string[]> {
  await fs.mkdir(outDir, { recursive: true });
  const written: string[] = [];
  for (const { name, spec } of simPlotSpecs(rows)) {
    const svg = await renderSvg(spec);
    const svgPath = path.join(outDir, `${name}.svg`);
    const pngPath = path.join(outDir, `${name}.png`);
    await fs.writeFile(svgPath, svg);
    await fs.writeFile(pngPath, svgToPng(svg));
    written.push(svgPath, pngPath);
  }
  return written;
}
