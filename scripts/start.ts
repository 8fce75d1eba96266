// `npm start`: the whole local stack. Starts the real Temporal dev server (SQLite under .cordon/,
// UI on, Cordon's search attributes registered), then the worker; Ctrl-C stops the worker first,
// then the server, leaving no process behind. When envconfig points at another cluster
// (TEMPORAL_ADDRESS, a profile, an API key), only the worker starts, against that cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfig } from '../activities/config';
import { temporalTarget } from '../client/connection';
import { startDevIssuer } from '../client/dev-issuer';
import { startDevServer, type DevServer } from './dev-server';
import { resolveTemporalCli } from './temporal-cli';

const ROOT = resolve(__dirname, '..');
const Ports = z.object({
  CORDON_TEMPORAL_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  CORDON_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
});

function startNode(script: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(ROOT, script)], { stdio: 'inherit', env, detached: true });
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise((ok) => child.once('exit', ok));
}

async function main(): Promise<void> {
  const ports = Ports.parse(process.env);
  const target = temporalTarget();
  let server: DevServer | undefined;
  let devIssuer: Awaited<ReturnType<typeof startDevIssuer>> | undefined;
  let workerEnv = process.env;
  if (target.external) {
    console.log(`cordon: envconfig points at ${target.address} (namespace ${target.namespace}): starting only the worker`);
  } else {
    const cli = await resolveTemporalCli();
    if (!cli.path) throw new Error('no temporal CLI: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or install Go >= 1.25 so `npm start` can build it');
    console.log(`cordon: temporal CLI from ${cli.source}: ${cli.path}`);
    server = await startDevServer({ cli: cli.path, port: ports.CORDON_TEMPORAL_PORT, uiPort: ports.CORDON_UI_PORT, dbFile: join(ROOT, '.cordon', 'temporal.db'), logLevel: 'error', detached: true });
    workerEnv = { ...process.env, TEMPORAL_ADDRESS: server.address };
    if (!process.env.CORDON_OIDC_ISSUER) {
      // The embedded stack has no identity provider: a loopback development issuer stands in.
      devIssuer = await startDevIssuer(loadConfig().dataDir, loadConfig().devIssuerPort);
      workerEnv = { ...workerEnv, ...devIssuer.env };
      console.log(`cordon: DEVELOPMENT OIDC issuer at ${devIssuer.issuer} (loopback only, not for production): \`npm run cordon -- login --as NAME --role lead\``);
    }
    console.log(`cordon: Temporal dev server up in ${server.startedInMs} ms`);
    console.log(`cordon:   gRPC  ${server.address}`);
    console.log(`cordon:   UI    ${server.uiAddress}/namespaces/default/workflows`);
  }
  const worker = startNode('workers/main.ts', workerEnv);
  // The HTTP API and Shared Signals endpoints, beside the worker and with the same settings.
  const http = loadConfig().http;
  const api = http.port ? startNode('server/main.ts', workerEnv) : undefined;
  console.log(`cordon: worker starting${api ? `, HTTP API on http://${http.host}:${http.port}` : ''}; try \`npm run cordon -- demo\` in another terminal. Ctrl-C stops everything.`);

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\ncordon: ${why}: stopping the HTTP API and the worker, then the server`);
    if (api && api.exitCode === null) api.kill('SIGTERM');
    if (worker.exitCode === null) worker.kill('SIGTERM');
    if (api) await exited(api);
    await exited(worker);
    await server?.stop('SIGTERM');
    await devIssuer?.close();
    console.log('cordon: stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('interrupted'));
  process.on('SIGTERM', () => void stop('terminated'));
  worker.once('exit', (code) => void stop(`worker exited (${code})`));
  api?.once('exit', (code) => void stop(`HTTP API exited (${code})`));
  server?.process.once('exit', (code) => void stop(`temporal server exited (${code})`));
}

main().catch((err) => {
  console.error(`cordon: ${(err as Error).message}`);
  process.exit(1);
});
