// Progress of a `dpfed sim` sweep on stderr: one tick per finished setting. On a terminal, a cli-progress
// bar redrawn in place with the count, the elapsed time, the ETA and the last finished setting's label.
// On anything else (a log file, a pipe, a Kubernetes pod's log) a bar redrawn with carriage returns
// would be noise, so each tick prints one plain line with the same figures.
import cliProgress from 'cli-progress';

export interface SimProgress {
  /** One more setting finished; `label` names it. */
  tick(label?: string): void;
  /** Ends the bar (leaves its last state on the terminal); later ticks are ignored. */
  stop(): void;
}

/** "1h02m", "3m05s", "42s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

export function createSimProgress(total: number, o: { stream?: NodeJS.WritableStream } = {}): SimProgress {
  if (!Number.isInteger(total) || total < 0) throw new RangeError(`sim progress: the number of settings must be a whole number ≥ 0, got ${total}`);
  const stream = o.stream ?? process.stderr;
  const started = Date.now();
  let done = 0;
  let stopped = false;

  if ((stream as { isTTY?: boolean }).isTTY !== true) {
    return {
      tick(label) {
        if (stopped) return;
        done++;
        const elapsed = (Date.now() - started) / 1000;
        const eta = done >= total ? 0 : (elapsed / done) * (total - done);
        stream.write(`sim ${done}/${total} settings · elapsed ${formatDuration(elapsed)} · ETA ${formatDuration(eta)}${label ? ` · done: ${label}` : ''}\n`);
      },
      stop() {
        stopped = true;
      },
    };
  }

  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'sim {bar} {value}/{total} settings · elapsed {duration_formatted} · ETA {eta_formatted} · {label}',
      hideCursor: true,
      etaBuffer: 20,
      // Settings can take minutes each: recompute the ETA as time passes, not only on a tick.
      etaAsynchronousUpdate: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { label: 'running…' });
  return {
    tick(label) {
      if (stopped) return;
      bar.increment(1, { label: label ? `done: ${label}` : '' });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
