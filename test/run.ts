// `npm test`'s runner: one real Temporal dev server for the whole run, started from the local
// `temporal` binary through the SDK's existing-path option, then every test file against it.
// No binary and no way to build one is a hard failure in CI (never a silent skip).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { startDevIssuer } from '../client/dev-issuer';
import { freePort } from '../scripts/dev-server';
import { resolveTemporalCli } from '../scripts/temporal-cli';
import { resolveTemporalServer } from '../scripts/temporal-server';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { inCI, startTestServices } from './services';

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

async function main(): Promise<number> {
  const cli = await resolveTemporalCli();
  if (!cli.path) console.warn('cordon test: no local temporal CLI; letting the SDK download the dev server (needs internet)');
  // Ctrl-C reaches the test process too (same process group); the servers (their own groups) are
  // stopped in `finally` once it has ended, instead of being left behind by an abrupt exit.
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      interrupted = true;
      console.error(`cordon test: ${sig}; stopping the servers`);
    });
  }
  const uiPort = await freePort();
  const uiUrl = `http://127.0.0.1:${uiPort}`;
  // The cluster test runs on the Temporal server and its schema tool: built once into the user
  // cache (minutes), before any test's clock starts. No Go and no build fails CI; elsewhere the
  // cluster test is skipped with the reason.
  const only = process.argv.slice(2);
  let clusterEnv: Record<string, string> = {};
  if (!only.length || only.some((f) => f.includes('cluster.test'))) {
    try {
      const b = await resolveTemporalServer();
      clusterEnv = { CORDON_TEMPORAL_SERVER_DIR: dirname(b.server) };
      console.log(`cordon test: Temporal server for the cluster test from ${b.source}${b.buildSeconds ? ` (built in ${b.buildSeconds.toFixed(0)} s)` : ''}`);
    } catch (err) {
      if (inCI()) throw err;
      console.warn(`cordon test: SKIPPING the cluster test on this machine: ${(err as Error).message}`);
      clusterEnv = { CORDON_TEST_NO_TEMPORAL_SERVER: (err as Error).message };
    }
  }
  const t0 = Date.now();
  // The dev server and the provider servers start side by side; whichever fails, the others stop.
  const [server, provided] = await Promise.allSettled([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: cli.path ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' },
        searchAttributes: ALL_SEARCH_ATTRIBUTES,
        // The UI too, on a free port: test/ui.test.ts drives it in a real browser.
        ui: true,
        uiPort,
        log: { format: 'pretty', level: 'error' },
      },
    }).then((e) => (console.log(`cordon test: dev server (${cli.source}) at ${e.address}, UI at ${uiUrl}, up in ${Date.now() - t0} ms`), e)),
    startTestServices(),
  ]);
  if (server.status === 'rejected' || provided.status === 'rejected') {
    await Promise.all([server.status === 'fulfilled' && server.value.teardown(), provided.status === 'fulfilled' && provided.value.stop()]);
    throw server.status === 'rejected' ? server.reason : (provided as PromiseRejectedResult).reason;
  }
  const [env, services] = [server.value, provided.value];
  // Operators are verified on the worker: a development issuer on loopback signs the suite's tokens.
  const issuerDir = mkdtempSync(join(tmpdir(), 'cordon-issuer-'));
  const issuer = await startDevIssuer(issuerDir);
  try {
    if (interrupted) return 130;
    const root = join(__dirname);
    const files = (only.length ? only : testFiles(root).sort()).map((f) => relative(process.cwd(), f));
    // Asynchronous on purpose: the development issuer answers JWKS requests from this process.
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
      stdio: 'inherit',
      env: { ...process.env, ...services.env, ...issuer.env, ...clusterEnv, CORDON_TEST_ISSUER_DIR: issuerDir, CORDON_TEST_TEMPORAL_ADDRESS: env.address, CORDON_TEST_UI_URL: uiUrl },
    });
    return await new Promise<number>((done) => child.once('exit', (code) => done(code ?? 1)));
  } finally {
    await issuer.close();
    await services.stop();
    await env.teardown();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`cordon test: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
