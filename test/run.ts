// `npm test`'s runner: one real Temporal dev server for the whole run, started from the local
// `temporal` binary through the SDK's existing-path option, then every test file against it.
// No binary and no way to build one is a hard failure in CI (never a silent skip).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { startDevIssuer } from '../client/dev-issuer';
import { resolveTemporalCli } from '../scripts/temporal-cli';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { startTestServices } from './services';

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
  const t0 = Date.now();
  // The dev server and the provider servers start side by side; whichever fails, the others stop.
  const [server, provided] = await Promise.allSettled([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: cli.path ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' },
        searchAttributes: ALL_SEARCH_ATTRIBUTES,
        log: { format: 'pretty', level: 'error' },
      },
    }).then((e) => (console.log(`cordon test: dev server (${cli.source}) at ${e.address}, up in ${Date.now() - t0} ms`), e)),
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
    const only = process.argv.slice(2);
    const files = (only.length ? only : testFiles(root).sort()).map((f) => relative(process.cwd(), f));
    // Asynchronous on purpose: the development issuer answers JWKS requests from this process.
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
      stdio: 'inherit',
      env: { ...process.env, ...services.env, ...issuer.env, CORDON_TEST_ISSUER_DIR: issuerDir, CORDON_TEST_TEMPORAL_ADDRESS: env.address },
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
