// Renders a Vega-Lite spec to SVG on the server (vega-lite compiles it, vega's headless View draws it; no
// browser, no canvas) and an SVG to PNG with resvg. resvg draws text only with a font it has loaded, so
// the PNG step loads the system's fonts and names a sans-serif family it found; with no font on the
// system it refuses rather than write a PNG whose axes have no labels. resvg is a native addon shipped as
// a per-platform optional dependency; it is loaded on the first PNG, so an install without it (npm's
// --omit=optional) can still import this module and write the SVGs, and the PNG step names what is missing.
import fs from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

export async function renderSvg(spec: vegaLite.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Folders where Linux distributions put system fonts. */
const FONT_DIRS = ['/usr/share/fonts', '/usr/local/share/fonts'];
/** Sans-serif families to draw with, by the file that carries the regular face (first found wins). */
const SANS_FILES: [file: string, family: string][] = [
  ['DejaVuSans.ttf', 'DejaVu Sans'],
  ['LiberationSans-Regular.ttf', 'Liberation Sans'],
  ['NotoSans-Regular.ttf', 'Noto Sans'],
  ['FreeSans.ttf', 'FreeSans'],
];

function fontFilesUnder(dir: string, depth = 0): string[] {
  if (depth > 4) return [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return fontFilesUnder(p, depth + 1);
    return /\.(ttf|otf|ttc)$/i.test(e.name) ? [p] : [];
  });
}

export interface PngFonts {
  /** Font files resvg loads. */
  files: string[];
  /** The family drawn for `sans-serif` (Vega's font) and for text whose family is not found. */
  sansSerif: string | null;
}

let systemFonts: PngFonts | undefined;

/** The system's font files and the sans-serif family among them (looked up once per process). */
export function findSystemFonts(dirs: readonly string[] = FONT_DIRS): PngFonts {
  if (dirs === FONT_DIRS && systemFonts) return systemFonts;
  const files = dirs.flatMap((d) => fontFilesUnder(d));
  const names = new Set(files.map((f) => path.basename(f)));
  const sansSerif = SANS_FILES.find(([file]) => names.has(file))?.[1] ?? null;
  const found = { files, sansSerif };
  if (dirs === FONT_DIRS) systemFonts = found;
  return found;
}

type ResvgModule = typeof import('@resvg/resvg-js');
let resvgModule: Promise<ResvgModule> | undefined;

function loadResvg(): Promise<ResvgModule> {
  resvgModule ??= import('@resvg/resvg-js').catch((e: unknown) => {
    resvgModule = undefined;
    throw new Error(`PNG plots need @resvg/resvg-js and its native package for ${process.platform}-${process.arch} (an optional dependency: install without --omit=optional): ${(e as Error).message}`);
  });
  return resvgModule;
}

/** The SVG as a PNG at `scale` times its size (2 by default, for sharp text). */
export async function svgToPng(svg: string, o: { scale?: number; fonts?: PngFonts } = {}): Promise<Buffer> {
  const fonts = o.fonts ?? findSystemFonts();
  if (fonts.files.length === 0) {
    throw new Error(`no font to draw the plots' text in a PNG: none under ${FONT_DIRS.join(' or ')} (install a font package, e.g. Debian's fonts-dejavu-core)`);
  }
  const { Resvg } = await loadResvg();
  const family = fonts.sansSerif ?? undefined;
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: o.scale ?? 2 },
    font: { loadSystemFonts: false, fontFiles: fonts.files, defaultFontFamily: family, sansSerifFamily: family },
  });
  return resvg.render().asPng();
}
