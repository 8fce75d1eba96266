// The foundation: a real workflow runs end to end on the real dev server through a real worker.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { closeTestEnv, isolatedConfig, testEnv, withWorker } from './harness';

after(closeTestEnv);

test('a workflow runs end to end on the real dev server', async () => {
  const config = isolatedConfig();
  await withWorker(config, async ({ client }) => {
    const handle = await client.workflow.start('engineFloor', { taskQueue: config.taskQueue, workflowId: `floor-${Date.now()}`, args: ['hello'] });
    assert.equal(await handle.result(), 'hello');
    const history = await handle.fetchHistory();
    const types = (history.events ?? []).map((e) => e.eventType);
    assert.ok(types.length >= 11, `expected a full history with an activity, got ${types.length} events`);
  });
});

test('the server registered every Cordon search attribute', async () => {
  const env = await testEnv();
  const res = await env.connection.operatorService.listSearchAttributes({ namespace: env.namespace ?? 'default' });
  for (const key of ALL_SEARCH_ATTRIBUTES) assert.ok(res.customAttributes?.[key.name] !== undefined, `${key.name} is not registered`);
});
