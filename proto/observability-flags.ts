// The observability flags of `dpfed coordinator` and `dpfed client`: structured logs (--log-level,
// --log-format) and the monitoring HTTP server (--metrics-port, --metrics-host) with /metrics,
// /healthz and /readyz.
import type { Registry } from 'prom-client';
import { createLogger, defaultLogFormat, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from './logger.ts';
import { startMetricsServer, type MetricsServer } from './metrics-server.ts';
import { UsageError, type FlagSpec, type FlagValues } from './command-flags.ts';

export function observabilityFlags(side: 'coordinator' | 'client'): FlagSpec[] {
  return [
    { name: 'log-level', type: 'string', default: 'info', choices: LOG_LEVELS, help: 'least severe log lines written to stderr' },
    { name: 'log-format', type: 'string', choices: LOG_FORMATS, help: 'stderr logs as JSON lines (run, round, institution, phase as fields) or as text (default: text on a terminal, else json)' },
    {
      name: 'metrics-port',
      type: 'int',
      help: `HTTP port for Prometheus /metrics, /healthz and /readyz (default: no metrics server; 0 = any free port, printed; the Kubernetes manifests use 9464)`,
      check: (v) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535'),
    },
    side === 'coordinator'
      ? { name: 'metrics-host', type: 'string', help: 'address the metrics server binds (default: the --host address, so a probe reaches it wherever gRPC is reachable)' }
      : { name: 'metrics-host', type: 'string', default: '127.0.0.1', help: 'address the metrics server binds (0.0.0.0 for a probe from outside, e.g. in a container)' },
  ];
}

/** The stderr logger the flags ask for. */
export function loggerFromFlags(f: FlagValues, o: { base?: Record<string, unknown>; context?: () => Record<string, unknown> } = {}): Logger {
  return createLogger({ level: String(f.logLevel) as LogLevel, format: (f.logFormat === undefined ? defaultLogFormat() : String(f.logFormat)) as LogFormat, ...o });
}

/** The metrics server on --metrics-port, or null when the flag is absent (no metrics server). */
export async function metricsServerFromFlags(f: FlagValues, registry: Registry, notReady: () => string | null): Promise<MetricsServer | null> {
  if (f.metricsPort === undefined) return null;
  const port = Number(f.metricsPort);
  const host = String(f.metricsHost ?? f.host ?? '127.0.0.1');
  try {
    return await startMetricsServer({ registry, notReady, host, port });
  } catch (error) {
    throw new UsageError(`--metrics-port: cannot listen on ${host}:${port}: ${(error as Error).message}`);
  }
}
