// Structured logs for the coordinator and the institution node (pino): one JSON object per line, with
// the run, round, institution and phase as fields wherever they apply (child loggers and a per-line
// context function), or the same lines as human-readable text for a terminal.
//
// What never goes into a log line: keys, nonces, session tokens, tensor values, and an institution's
// row counts. Callers log identifiers, counts of institutions, timings and ε figures only; as a second
// line of defence the fields that would carry such values are redacted by name.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Field names whose values are never written, at any depth the paths reach. */
const REDACTED_FIELDS = ['session', 'nonce', 'signature', 'secretKey', 'privateKey', 'key', 'identity', 'splitKey', 'data', 'packedData', 'values'];

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go (default: stderr). Gets one complete line per write. */
  destination?: { write(line: string): unknown };
  /** Fields on every line (e.g. { institution }). */
  base?: Record<string, unknown>;
  /** Fields computed for every line as it is written (e.g. the current round and phase). */
  context?: () => Record<string, unknown>;
}

/** The default format: JSON unless stderr is a terminal. */
export function defaultLogFormat(): LogFormat {
  return process.stderr.isTTY ? 'text' : 'json';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const out = options.destination ?? process.stderr;
  const stream: DestinationStream = options.format === 'text' ? textStream(out) : { write: (line: string) => void out.write(line) };
  return pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: '[redacted]' },
      ...(options.context ? { mixin: options.context } : {}),
    },
    stream,
  );
}

/**
 * The `log(line)` callback the coordinator and the SDK take, writing to `logger`: a line about an
 * internal error at level error, any other at info. `prefix` is dropped from the front of a line (the
 * SDK starts its lines with "[institution] ", which the logger already carries as a field).
 */
export function lineLogger(logger: Logger, prefix = ''): (line: string) => void {
  return (line) => {
    const text = prefix && line.startsWith(prefix) ? line.slice(prefix.length) : line;
    if (/^internal error|failed:/.test(text)) logger.error(text);
    else logger.info(text);
  };
}

const CONTEXT_FIELDS = ['institution', 'run', 'round', 'phase'] as const;
const OMITTED_FIELDS = new Set<string>(['level', 'time', 'pid', 'msg', ...CONTEXT_FIELDS]);

/** pino's JSON lines rewritten as `TIME LEVEL [institution run=… round=… phase=…] message key=value …`. */
function textStream(out: { write(line: string): unknown }): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line);
      } catch {
        return void out.write(line);
      }
      const context = CONTEXT_FIELDS.filter((f) => record[f] !== undefined && record[f] !== '').map((f) => (f === 'institution' ? String(record[f]) : `${f}=${record[f]}`));
      const rest = Object.entries(record)
        .filter(([k]) => !OMITTED_FIELDS.has(k))
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      const parts = [String(record.time ?? ''), String(record.level ?? '').toUpperCase(), context.length ? `[${context.join(' ')}]` : '', String(record.msg ?? ''), ...rest];
      out.write(parts.filter(Boolean).join(' ') + '\n');
    },
  };
}
