// A small HTTP server for an operator's monitoring: `/metrics` (Prometheus text format from a
// prom-client registry), `/healthz` (200 while the process serves) and `/readyz` (200 once the process
// is ready, else 503 with what it waits for). The coordinator and the institution node each run one
// on `--metrics-port`; it serves nothing else and reads nothing from the request but its path.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  registry: Registry;
  host?: string;
  port: number;
  /** null when ready; otherwise what the process still waits for (the body of the 503). */
  notReady: () => string | null;
}

export interface MetricsServer {
  readonly port: number;
  /** host:port the server is bound to. */
  readonly address: string;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      response.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'only GET\n');
    if (path === '/healthz') return reply(200, 'ok\n');
    if (path === '/readyz') {
      const waiting = options.notReady();
      return waiting === null ? reply(200, 'ready\n') : reply(503, `not ready: ${waiting}\n`);
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => reply(200, text, options.registry.contentType),
        (error: unknown) => reply(500, `metrics: ${(error as Error).message}\n`),
      );
      return;
    }
    reply(404, 'not found: /metrics, /healthz, /readyz\n');
  });
  // a scraper that keeps its connection open must not hold the process at shutdown
  server.keepAliveTimeout = 5_000;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : options.port);
    });
  });
  return {
    port,
    address: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
