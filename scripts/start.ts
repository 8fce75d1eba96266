// `npm start`: the whole local stack. Starts the real Temporal dev server (SQLite in
// CORDON_DATA_DIR, UI on, Cordon's search attributes registered), then the worker; Ctrl-C stops
// the worker first, then the server, leaving no process behind, at any moment (the server is
// stopped even if it is still starting). One stack per data folder: a second is refused. When
// envconfig points at another cluster (TEMPORAL_ADDRESS, a profile, an API key), only the worker
// starts, against that cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfig } from '../activities/config';
import { temporalTarget } from '../client/connection';
import { startDevIssuer } from '../client/dev-issuer';
import { uiBase, viewLines } from '../client/views';
import { startDevServer, type DevServer } from './dev-server';
import { STACK_CHILD_STDIO } from './stack-child';
import { acquireStackLock, type StackLock } from './stack-lock';
import { resolveTemporalCli } from './temporal-cli';

const ROOT = resolve(__dirname, '..');
const Ports = z.object({
  CORDON_TEMPORAL_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  CORDON_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
});

const abort = new AbortController();
let lock: StackLock | undefined;
let starting: Promise<unknown> | undefined;
let server: DevServer | undefined;
let devIssuer: Awaited<ReturnType<typeof startDevIssuer>> | undefined;
let worker: ChildProcess | undefined;
let api: ChildProcess | undefined;
let stopping = false;

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
const exited = (c: ChildProcess) => (running(c) ? new Promise<void>((ok) => c.once('exit', () => ok())) : Promise.resolve());

/** Stops whatever has started so far, in order (worker, then server), and exits. */
async function stop(why: string, code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\ncordon: ${why}: stopping${api ? ' the HTTP API,' : ''}${worker ? ' the worker, then' : ''} the server`);
  abort.abort(); // a server still starting: startDevServer stops it and rejects
  // The HTTP API first (no new work), then the worker. Each runs in its own process group:
  // `--import tsx` may add a child; the SDK drains within its grace time.
  for (const child of [api, worker]) {
    if (!child || !running(child)) continue;
    const group = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // gone
      }
    };
    group('SIGTERM');
    const timer = setTimeout(() => group('SIGKILL'), 15_000);
    await exited(child);
    clearTimeout(timer);
  }
  await starting?.catch(() => undefined);
  await server?.stop('SIGTERM');
  await devIssuer?.close();
  lock?.release();
  console.log('cordon: stopped');
  process.exit(code);
}

// From the first moment: a Ctrl-C while the server is starting must stop it too. (A terminal
// sends SIGINT to npm, tsx and this process; a repeated signal while stopping changes nothing.)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stop(sig === 'SIGINT' ? 'interrupted' : `${sig} received`, 0));

async function main(): Promise<void> {
  const ports = Ports.parse(process.env);
  const config = loadConfig();
  const target = temporalTarget();
  lock = acquireStackLock(config.dataDir);
  let workerEnv = process.env;
  if (target.external) {
    console.log(`cordon: envconfig points at ${target.address} (namespace ${target.namespace}): starting only the worker`);
  } else {
    const cli = await resolveTemporalCli();
    if (!cli.path) throw new Error('no temporal CLI: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or install Go >= 1.25 so `npm start` can build it');
    if (stopping) return;
    console.log(`cordon: temporal CLI from ${cli.source}: ${cli.path}`);
    const dbFile = join(config.dataDir, 'temporal.db');
    const start = startDevServer({
      cli: cli.path,
      port: ports.CORDON_TEMPORAL_PORT,
      uiPort: ports.CORDON_UI_PORT,
      dbFile,
      logLevel: 'error',
      detached: true,
      signal: abort.signal,
      onSpawn: (pid) => lock?.record({ serverPid: pid, dbFile }),
    });
    starting = start;
    server = await start;
    starting = undefined;
    workerEnv = { ...process.env, TEMPORAL_ADDRESS: server.address };
    if (!process.env.CORDON_OIDC_ISSUER) {
      // The embedded stack has no identity provider: a loopback development issuer stands in.
      devIssuer = await startDevIssuer(config.dataDir, config.devIssuerPort);
      workerEnv = { ...workerEnv, ...devIssuer.env };
      console.log(`cordon: DEVELOPMENT OIDC issuer at ${devIssuer.issuer} (loopback only, not for production): \`npm run cordon -- login --as NAME --role lead\``);
    }
    console.log(`cordon: Temporal dev server up in ${server.startedInMs} ms (SQLite ${dbFile})`);
    console.log(`cordon:   gRPC  ${server.address}`);
    console.log(`cordon:   UI    ${server.uiAddress}/namespaces/default/workflows`);
    server.process.once('exit', (code, sig) => void stop(`temporal server exited (${sig ?? code})`, 1));
    console.log('cordon: ready-made views (Cordon\'s columns: see README, "Watching"):');
    for (const line of viewLines(server.uiAddress!, 'default')) console.log(`cordon: ${line}`);
  }
  if (target.external && process.env.CORDON_UI_URL) {
    console.log('cordon: ready-made views:');
    for (const line of viewLines(uiBase(), target.namespace)) console.log(`cordon: ${line}`);
  }
  if (stopping) return;
  worker = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'workers', 'main.ts')], { stdio: STACK_CHILD_STDIO, env: workerEnv, detached: true });
  lock.record({ workerPid: worker.pid });
  worker.once('exit', (code, sig) => void stop(`worker exited (${sig ?? code})`, code === 0 ? 0 : 1));
  // The HTTP API and Shared Signals endpoints, beside the worker and with the same settings.
  if (config.http.port) {
    api = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'server', 'main.ts')], { stdio: STACK_CHILD_STDIO, env: workerEnv, detached: true });
    lock.record({ apiPid: api.pid });
    api.once('exit', (code, sig) => void stop(`HTTP API exited (${sig ?? code})`, code === 0 ? 0 : 1));
  }
  console.log(`cordon: worker starting${api ? `, HTTP API on http://${config.http.host}:${config.http.port}` : ''}; try \`npm run cordon -- demo\` in another terminal. Ctrl-C stops everything.`);
}

main().catch((err) => {
  if (stopping) return; // interrupted while starting: stop() reports and exits
  console.error(`cordon: ${(err as Error).message}`);
  if (!server && !worker) {
    lock?.release();
    process.exit(1);
  }
  void stop('start-up failed', 1);
});
