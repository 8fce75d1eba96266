// The foundation: a real workflow runs end to end on the real dev server through a real worker.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ApplicationFailure, Client, Connection } from '@temporalio/client';
import { startDevServer } from '../scripts/dev-server';
import { resolveTemporalCli } from '../scripts/temporal-cli';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { workflowBundle } from '../workers/worker';
import { closeTestEnv, isolatedConfig, testEnv, withWorker } from './harness';
import { approvalLadder, policyWith } from './fixtures';
import { scenario } from './scenario';

after(closeTestEnv);

test('a workflow runs end to end on the real dev server', async () => {
  const config = isolatedConfig();
  await withWorker(config, async ({ client }) => {
    const handle = await client.workflow.start('engineFloor', { taskQueue: config.taskQueue, workflowId: `floor-${Date.now()}`, args: ['hello'] });
    const r = await handle.result();
    assert.equal(r.tag, 'hello');
    assert.ok(Math.abs(r.at - Date.now()) < 60_000, `the no-op says when it ran: ${r.at}`);
    const history = await handle.fetchHistory();
    const types = (history.events ?? []).map((e) => e.eventType);
    assert.ok(types.length >= 11, `expected a full history with an activity, got ${types.length} events`);
  });
});

test('zod is preloaded once per workflow thread, not evaluated again for every containment', async () => {
  // webpack drops a preload whose exports go unused from a package marked side-effect free (zod
  // is): then every containment would evaluate zod again, and nothing else would fail.
  const { code } = await workflowBundle();
  const preload = /exports\.preloadModules = function preloadModules\(\) \{([^}]*)\}/.exec(code);
  assert.ok(preload, 'the bundle has a preloadModules function');
  const body = preload[1] ?? '';
  assert.match(body, /__webpack_require__\([^)]*"\.\/workflows\/shared-zod\.ts"\)/, `preloadModules loads shared-zod.ts: ${body.trim()}`);
});

test('the promise hook\'s stacks are off unless asked for; an error thrown in workflow code keeps its frames either way', async () => {
  for (const stackTraces of [false, true]) {
    const preload = /exports\.preloadModules = function preloadModules\(\) \{([^}]*)\}/.exec((await workflowBundle({ stackTraces })).code)?.[1] ?? '';
    // First, so the realm's formatter is in place before any other module makes a promise.
    assert.equal(/^\s*__webpack_require__\([^)]*"\.\/workflows\/quiet-promise-stacks\.ts"\)/.test(preload), !stackTraces, `stack traces ${stackTraces}: ${preload.trim()}`);
    await scenario({ policy: policyWith(approvalLadder()), config: { workflowStackTraces: stackTraces } }, async (sc) => {
      const { waiting } = await sc.until('approval to restrict', (s) => s.waiting?.stage === 'restrict');
      const handle = sc.client.workflow.getHandle(sc.workflowId);
      // What the Temporal UI's Stack Trace tab shows: where the ladder waits, or nothing.
      const stacks = await handle.query<string>('__stack_trace');
      if (stackTraces) assert.match(stacks, /workflows\/containment\.ts/, stacks);
      else assert.equal(stacks, '');
      // Refused in workflow code (no token): the failure carries the stack it was thrown with.
      const refused = await handle.executeUpdate('command', { args: [{ type: 'advance', reason: 'no token', gate: waiting!.gate }] }).then(
        () => assert.fail('a command without a token is refused'),
        (err: Error) => err.cause,
      );
      assert.ok(refused instanceof ApplicationFailure, String(refused));
      assert.match(refused.stack ?? '', /^\s+at reject \(.+:\d+:\d+\)$/m, refused.stack);
    });
  }
});

test('a containment takes its schemas from the copy its workflow thread shares, never evaluates its own', async () => {
  // Any module a new containment evaluates that imports schemas.ts or policy.ts gives every
  // containment its own copy again (about 3 ms of CPU each); only the shared accessor and the
  // legacy ladder, which only pre-v3 histories load, may.
  const { code } = await workflowBundle();
  const preload = /exports\.preloadModules = function preloadModules\(\) \{([^}]*)\}/.exec(code)?.[1] ?? '';
  assert.match(preload, /"\.\/workflows\/shared-schemas\.ts"/, `preloadModules loads shared-schemas.ts: ${preload.trim()}`);
  const modules = code.split(/\n\/\*\*\*\/ "(\.\/[^"]+)"\n/);
  const importers: string[] = [];
  for (let i = 1; i < modules.length; i += 2) {
    if (/__webpack_require__\([^)]*"\.\/workflows\/(schemas|policy)\.ts"\)/.test(modules[i + 1] ?? '')) importers.push(modules[i]!);
  }
  assert.ok(modules.length > 20, 'the bundle splits into its modules');
  assert.deepEqual(importers.sort(), ['./workflows/legacy/containment-v2.ts', './workflows/policy.ts', './workflows/shared-schemas.ts']);
  // The legacy ladder is required where a pre-v3 history asks for it, not at the top of containment.ts.
  const containment = modules[modules.indexOf('./workflows/containment.ts') + 1] ?? '';
  assert.doesNotMatch(containment.split('function containment(')[0] ?? '', /"\.\/workflows\/legacy\/containment-v2\.ts"/);
});

test('the server registered every Cordon search attribute', async () => {
  const env = await testEnv();
  const res = await env.connection.operatorService.listSearchAttributes({ namespace: env.namespace ?? 'default' });
  for (const key of ALL_SEARCH_ATTRIBUTES) assert.ok(res.customAttributes?.[key.name] !== undefined, `${key.name} is not registered`);
});

test('a workflow started before a dev server crash is still there after it (SQLite file, WAL)', async () => {
  const cli = await resolveTemporalCli({ build: false });
  assert.ok(cli.path, 'the temporal CLI must be available locally for this test');
  const dbFile = join(mkdtempSync(join(tmpdir(), 'cordon-db-')), 'temporal.db');
  let server = await startDevServer({ cli: cli.path, dbFile, headless: true });
  const port = Number(server.address.split(':')[1]);
  const workflowId = `persist-${Date.now()}`;
  try {
    const client = new Client({ connection: await Connection.connect({ address: server.address }) });
    await client.workflow.start('engineFloor', { taskQueue: 'nobody-polls-this', workflowId, args: ['x'] });
    await client.connection.close();
    // WAL mode (SQLITE_PRAGMAS): commits append to the log, and a crash leaves it for the next start.
    assert.ok(statSync(`${dbFile}-wal`).size > 0, 'the dev server writes through a write-ahead log');
    await server.stop('SIGKILL'); // a crash: no checkpoint, no clean close
    server = await startDevServer({ cli: cli.path, dbFile, headless: true, port });
    const again = new Client({ connection: await Connection.connect({ address: server.address }) });
    const description = await again.workflow.getHandle(workflowId).describe();
    assert.equal(description.status.name, 'RUNNING');
    await again.connection.close();
  } finally {
    await server.stop();
  }
});
