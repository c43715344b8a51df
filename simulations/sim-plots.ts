// The `dpfed sim` plots: each plot the result rows have data for (simulations/sim-plot-specs.ts) written
// to the output folder as `<name>.svg` and `<name>.png`. Every SVG is written before the first PNG, so a
// machine that cannot draw PNGs (no font, no resvg binding: the error says which) still has the SVGs.
import fs from 'node:fs/promises';
import path from 'node:path';
import { renderSvg, svgToPng } from './sim-plot-render.ts';
import { simPlotSpecs, type SimPlotRow } from './sim-plot-specs.ts';

/** Writes the plots into `outDir` (created if missing) and returns the paths written, SVG then PNG per plot. */
export async function writeSimPlots(outDir: string, rows: SimPlotRow[]): Promise<string[]> {
  await fs.mkdir(outDir, { recursive: true });
  const plots: { svg: string; svgPath: string; pngPath: string }[] = [];
  for (const { name, spec } of simPlotSpecs(rows)) {
    const svg = await renderSvg(spec);
    const svgPath = path.join(outDir, `${name}.svg`);
    await fs.writeFile(svgPath, svg);
    plots.push({ svg, svgPath, pngPath: path.join(outDir, `${name}.png`) });
  }
  for (const { svg, pngPath } of plots) await fs.writeFile(pngPath, await svgToPng(svg));
  return plots.flatMap((p) => [p.svgPath, p.pngPath]);
}
