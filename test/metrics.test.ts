// The worker's Prometheus endpoint, scraped after a real containment: Cordon's own histograms
// (time to suppress, provider calls) and outcome counters beside the SDK's metrics.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { LabDirectory } from '../activities/providers/lab';
import { describeContainment, submitSignal } from '../client/containments';
import { freePort } from '../scripts/dev-server';
import { WorkerProcess } from '../scripts/worker-process';
import { ContainmentState } from '../workflows/schemas';
import { labIdentity, policyWith, signal } from './fixtures';

let worker: WorkerProcess;
let client: Client;
let port: number;
let lab: LabDirectory;
const taskQueue = `cordon-metrics-${process.pid}`;

before(async () => {
  const address = process.env.CORDON_TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('CORDON_TEST_TEMPORAL_ADDRESS is not set: run tests through `npm test`');
  const dir = mkdtempSync(join(tmpdir(), 'cordon-metrics-'));
  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(policyWith([])));
  lab = new LabDirectory(join(dir, 'lab.json'));
  port = await freePort();
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k)));
  const env = {
    ...base,
    TEMPORAL_ADDRESS: address,
    CORDON_DATA_DIR: dir,
    CORDON_TASK_QUEUE: taskQueue,
    CORDON_POLICY: policyFile,
    CORDON_LAB_FILE: lab.file,
    CORDON_METRICS_PORT: String(port),
    CORDON_OIDC_ISSUER: process.env.CORDON_OIDC_ISSUER!,
  };
  worker = new WorkerProcess(env, join(dir, 'worker.log'), () => undefined, 'metrics-worker');
  await worker.start();
  client = new Client({ connection: await Connection.connect({ address }) });
});

after(async () => {
  await worker?.stop();
  await client?.connection.close();
});

const scrape = async () => (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split('\n');
/** The value of the first sample of `name` whose labels include every `labels` pair. */
function sample(lines: string[], name: string, labels: Record<string, string>): number | undefined {
  const line = lines.find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('after a containment, /metrics has time to suppress, provider call times and outcome counts beside the SDK metrics', async () => {
  const id = 'svc-metrics-1';
  await lab.seed({ [id]: labIdentity() });
  const { workflowId } = await submitSignal(client, signal({ identityId: id }), { taskQueue });
  let state: ContainmentState | undefined;
  for (let i = 0; i < 100 && state?.position !== 'suppressed'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    state = ContainmentState.parse(await describeContainment(client, workflowId));
  }
  assert.equal(state?.position, 'suppressed', 'the containment suppressed');
  const acts = state.plan.suppress;
  assert.ok(acts.length > 0);

  // The SDK exports on its own period: wait until the workflow's series show up.
  let lines: string[] = [];
  for (let i = 0; i < 50; i++) {
    lines = await scrape();
    if (acts.every((a) => sample(lines, 'cordon_time_to_suppress_ms_count', { provider: 'lab', action: a }))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const a of acts) {
    assert.equal(sample(lines, 'cordon_time_to_suppress_ms_count', { provider: 'lab', action: a }), 1, `one time-to-suppress sample for ${a}:\n${lines.filter((l) => l.startsWith('cordon_')).join('\n')}`);
    const sum = sample(lines, 'cordon_time_to_suppress_ms_sum', { provider: 'lab', action: a })!;
    assert.ok(sum > 0 && sum < 60_000, `time to suppress for ${a} is a plausible number of ms: ${sum}`);
    assert.equal(sample(lines, 'cordon_actions', { provider: 'lab', action: `suppress:${a}`, outcome: state.actions.find((x) => x.action === `suppress:${a}`)!.outcome }), 1);
    assert.equal(sample(lines, 'cordon_provider_call_ms_count', { provider: 'lab', action: `suppress:${a}`, outcome: 'ok' }), 1, `one provider call timed for suppress:${a}`);
  }
  // Buckets are Cordon's (milliseconds from 5 ms to 5 min), not the SDK's defaults.
  assert.ok(lines.some((l) => l.startsWith('cordon_time_to_suppress_ms_bucket{') && l.includes('le="250"')), 'the 250 ms bucket exists');
  // The SDK's own series leave by the same exporter.
  assert.ok(lines.some((l) => l.startsWith('temporal_workflow_task_')), 'SDK workflow task metrics are there');
  assert.ok(lines.some((l) => l.startsWith('temporal_local_activity_')), 'SDK local activity metrics are there (suppression runs as local activities)');
});

test('a worker process warms itself up at start: one engine-floor workflow on its task queue, nothing on any provider', async () => {
  const query = `TaskQueue = "${taskQueue}" AND WorkflowType = "engineFloor"`;
  const ids: string[] = [];
  for (let i = 0; i < 100 && !ids.length; i++) {
    for await (const w of client.workflow.list({ query: `${query} AND ExecutionStatus = "Completed"` })) ids.push(w.workflowId);
    if (!ids.length) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(ids.length, 1, 'one completed warm-up workflow');
  assert.match(ids[0]!, new RegExp(`^cordon-warm-up/${taskQueue}/`));
  const history = await client.workflow.getHandle(ids[0]!).fetchHistory();
  const activities = (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
  assert.deepEqual(activities, ['noop'], 'the warm-up runs only the no-op activity');
});
