// Starts the real Temporal dev server (`temporal server start-dev`, SQLite) as a child process,
// with every Cordon search attribute registered, and waits until it answers gRPC.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { searchAttributeFlags } from '../workflows/search-attributes';
import { ENGINE_TUNING, SQLITE_PRAGMAS } from './engine-tuning';

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
  /** Aborting stops a server still starting (Ctrl-C before it is ready); the promise then rejects. */
  signal?: AbortSignal;
  /** Called as soon as the server process exists, before it answers (to record its pid). */
  onSpawn?: (pid: number) => void;
  /** Dynamic config on top of ENGINE_TUNING (a value of null drops a tuned key). */
  dynamicConfig?: Record<string, string | number | boolean | null>;
  /** SQLite pragmas for dbFile on top of SQLITE_PRAGMAS (a value of null drops one). */
  sqlitePragmas?: Record<string, string | null>;
}


/** `--dynamic-config-value key=value` flags (values in JSON, as the CLI expects). */
export function dynamicConfigFlags(extra: DevServerOptions['dynamicConfig'] = {}): string[] {
  const merged: Record<string, unknown> = { ...ENGINE_TUNING, ...extra };
  return Object.entries(merged)
    .filter(([, v]) => v !== null)
    .flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]);
}

/** The pragmas a database file gets: SQLITE_PRAGMAS with `extra` on top, nulls dropped. */
export function sqlitePragmasWith(extra: DevServerOptions['sqlitePragmas'] = {}): Record<string, string> {
  return Object.fromEntries(Object.entries({ ...SQLITE_PRAGMAS, ...extra }).filter((e): e is [string, string] => e[1] !== null));
}

/** `--sqlite-pragma key=value` flags for a database file. */
function sqlitePragmaFlags(extra: DevServerOptions['sqlitePragmas']): string[] {
  return Object.entries(sqlitePragmasWith(extra)).flatMap(([k, v]) => ['--sqlite-pragma', `${k}=${v}`]);
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

/** The last few KiB a process printed, for an error message that quotes it. */
function tail(max = 4000) {
  let text = '';
  return { add: (d: Buffer) => void (text = (text + d.toString()).slice(-max)), text: () => text.trim() };
}

export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  o.signal?.throwIfAborted();
  const port = o.port ?? (await freePort());
  const uiPort = o.headless ? undefined : (o.uiPort ?? port + 1000);
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', o.namespace ?? 'default', '--log-level', o.logLevel ?? 'error', ...searchAttributeFlags(), ...dynamicConfigFlags(o.dynamicConfig)];
  if (o.dbFile) {
    mkdirSync(dirname(o.dbFile), { recursive: true });
    args.push('--db-filename', o.dbFile, ...sqlitePragmaFlags(o.sqlitePragmas));
  }
  if (uiPort) args.push('--ui-port', String(uiPort));
  else args.push('--headless');
  const t0 = Date.now();
  // Output is passed through as before, and its tail kept: when the server gives up, its own
  // words (a port in use, a database it cannot open) are the error, not a guess.
  const child = spawn(o.cli, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: o.detached ?? false });
  const output = tail();
  child.stdout!.on('data', (d: Buffer) => (output.add(d), process.stdout.write(d)));
  child.stderr!.on('data', (d: Buffer) => (output.add(d), process.stderr.write(d)));
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (o.detached && child.pid) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      // already gone
    }
  };
  // Never outlive the process that started it, whatever path that process takes to exit.
  const orphanGuard = () => signal('SIGKILL');
  process.once('exit', orphanGuard);
  let exited: string | undefined;
  const exit = new Promise<void>((ok) =>
    child.once('exit', (code, sig) => {
      exited = `exited with ${sig ?? code}`;
      process.off('exit', orphanGuard);
      ok();
    }),
  );
  const stop = async (sig: NodeJS.Signals = 'SIGTERM') => {
    if (!exited) signal(sig);
    const timer = setTimeout(() => signal('SIGKILL'), 10_000);
    await exit;
    clearTimeout(timer);
  };
  if (child.pid) o.onSpawn?.(child.pid);
  const onAbort = () => signal('SIGTERM');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const address = `127.0.0.1:${port}`;
  const deadline = t0 + (o.startTimeoutMs ?? 60_000);
  for (;;) {
    if (o.signal?.aborted) {
      await stop('SIGTERM');
      throw new Error(`temporal dev server start on ${address} interrupted`, { cause: o.signal.reason });
    }
    if (exited) {
      await exit;
      await new Promise((r) => setImmediate(r)); // the last output chunks
      throw new Error(`temporal dev server ${exited} before it answered on ${address}: ${output.text() || '(it printed nothing)'}`);
    }
    let conn: Connection | undefined;
    try {
      conn = await Connection.connect({ address, connectTimeout: 1000 });
      await conn.workflowService.describeNamespace({ namespace: o.namespace ?? 'default' });
      o.signal?.removeEventListener('abort', onAbort);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop('SIGKILL');
        throw new Error(`temporal dev server did not answer on ${address} within ${o.startTimeoutMs ?? 60_000} ms: ${(err as Error).message}; it printed: ${output.text() || 'nothing'}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await conn?.close(); // a probe that failed half-way must not keep its channel open
    }
  }
  return {
    address,
    uiAddress: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
    process: child,
    startedInMs: Date.now() - t0,
    stop,
  };
}
