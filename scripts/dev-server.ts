// Starts the real Temporal dev server (`temporal server start-dev`, SQLite) as a child process,
// with every Cordon search attribute registered, and waits until it answers gRPC.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { searchAttributeFlags } from '../workflows/search-attributes';

export interface DevServerOptions {
  cli: string;
  port?: number;
  uiPort?: number;
  /** SQLite file: state survives restarts. Without it, the server keeps everything in memory. */
  dbFile?: string;
  headless?: boolean;
  namespace?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  startTimeoutMs?: number;
  /** Own process group, so a terminal's Ctrl-C reaches only the parent, which stops things in order. */
  detached?: boolean;
}

export interface DevServer {
  address: string;
  uiAddress?: string;
  process: ChildProcess;
  startedInMs: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const port = o.port ?? (await freePort());
  const uiPort = o.headless ? undefined : (o.uiPort ?? port + 1000);
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', o.namespace ?? 'default', '--log-level', o.logLevel ?? 'error', ...searchAttributeFlags()];
  if (o.dbFile) {
    mkdirSync(dirname(o.dbFile), { recursive: true });
    args.push('--db-filename', o.dbFile);
  }
  if (uiPort) args.push('--ui-port', String(uiPort));
  else args.push('--headless');
  const t0 = Date.now();
  const child = spawn(o.cli, args, { stdio: ['ignore', 'inherit', 'inherit'], detached: o.detached ?? false });
  let exited: string | undefined;
  const exit = new Promise<void>((ok) =>
    child.once('exit', (code, sig) => {
      exited = `exited with ${sig ?? code}`;
      ok();
    }),
  );
  const address = `127.0.0.1:${port}`;
  const deadline = t0 + (o.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`temporal dev server ${exited} before it answered on ${address} (is the port taken?)`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      await conn.workflowService.describeNamespace({ namespace: o.namespace ?? 'default' });
      await conn.close();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`temporal dev server did not answer on ${address} within ${o.startTimeoutMs ?? 60_000} ms: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    address,
    uiAddress: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
    process: child,
    startedInMs: Date.now() - t0,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!exited) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
