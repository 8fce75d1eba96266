// Replays recorded histories (test/histories/) against today's workflow code, so a change that
// would break running containments fails here instead of in production. Re-record only with
// `npx tsx test/run.ts test/record-histories.ts`, and only when no old containment can be running.
import './quiet-runtime';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { workflowBundle } from '../workers/worker';
import { localRuns } from '../scripts/worker-process';
import type { FirstStep } from '../workflows/contract';

const DIR = join(__dirname, 'histories');
/** The workflow id each history ran under (v3 checks it); earlier files are named by file. */
const IDS = JSON.parse(readFileSync(join(DIR, 'workflow-ids.json'), 'utf8')) as Record<string, string>;
const files = readdirSync(DIR).filter((f) => f.endsWith('.json') && f !== 'workflow-ids.json');
const histories = files.map((f) => ({ file: f, workflowId: IDS[f] ?? f, history: historyFromJSON(JSON.parse(readFileSync(join(DIR, f), 'utf8'))) }));

/** The patch ids a history's markers record (marker payloads are base64 JSON). */
const patchIds = (file: string) =>
  [...readFileSync(join(DIR, file), 'utf8').matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).filter((t) => t.includes('"deprecated"'));

/** The histories of version `v` (by file prefix): at least `min`, each with exactly one patch marker, `patch`, which no other history carries. */
function onlyMarker(v: string, patch: string, min: number): string[] {
  const mine = files.filter((f) => f.startsWith(`${v}-`));
  assert.ok(mine.length >= min, `${mine.length} ${v} histories`);
  for (const f of mine) {
    const ids = patchIds(f);
    assert.ok(ids.length === 1 && ids[0]!.includes(patch), `${f}: ${ids.join(' | ')}`);
  }
  assert.deepEqual(files.filter((f) => !f.startsWith(`${v}-`) && patchIds(f).some((p) => p.includes(patch))), []);
  return mine;
}

test('recorded histories exist for the ladder', () => {
  assert.ok(histories.length >= 12, `only ${histories.length} recorded histories in ${DIR}`);
});

test('rollback histories exist from before and after the patched() session-block change', () => {
  const rollbacks = histories.filter((h) => h.file.endsWith('approvals-rollback.json'));
  const marked = rollbacks.filter((h) => JSON.stringify(h.history).includes('MARKER_RECORDED') || h.history.events?.some((e) => e.markerRecordedEventAttributes));
  assert.ok(marked.length >= 1 && marked.length < rollbacks.length, `old and new rollback histories: ${rollbacks.length} found, ${marked.length} with the patch marker`);
});

test('v3 and v4 histories carry the control-plane patch marker; earlier ones replay on the frozen v2 ladder', () => {
  const marked = (f: string) => patchIds(f).some((p) => p.includes('v3-trusted-control-plane'));
  const v3 = files.filter((f) => /^v[34]-/.test(f));
  assert.ok(v3.length >= 16, `${v3.length} v3 and v4 histories`);
  assert.deepEqual(v3.filter((f) => !marked(f)), []);
  assert.deepEqual(files.filter((f) => !/^v[34]-/.test(f) && marked(f)), []);
});

test('v4 histories (local provider calls) carry their patch marker; v3 ones replay with remote activities', () => {
  const marked = (f: string) => patchIds(f).some((p) => p.includes('v4-local-provider-calls'));
  const v4 = files.filter((f) => f.startsWith('v4-'));
  assert.ok(v4.length >= 8, `${v4.length} v4 histories`);
  assert.deepEqual(v4.filter((f) => !marked(f)), []);
  assert.deepEqual(files.filter((f) => !f.startsWith('v4-') && marked(f)), []);
  // What v4 is for: no provider call goes through the task queue (each is a local activity's marker).
  const PROVIDER_CALLS = ['suppress', 'inspectIdentity', 'restrictGrants', 'restoreGrants', 'rotateCredential', 'setEnabled', 'findDependents', 'liftSuppression'];
  const remote = (f: string) => (histories.find((h) => h.file === f)!.history.events ?? []).filter((e) => PROVIDER_CALLS.includes(e.activityTaskScheduledEventAttributes?.activityType?.name ?? '')).length;
  assert.deepEqual(v4.map(remote), v4.map(() => 0));
  assert.ok(remote('v3-timed-ladder.json') > 0, 'v3 scheduled its provider calls as activities');
});

test('v5 histories carry one patch marker, their own, and take evidence as a local activity', () => {
  const v5 = onlyMarker('v5', 'v5-one-task-to-park', 8);
  const events = (f: string) => histories.find((h) => h.file === f)!.history.events ?? [];
  const remote = v5.filter((f) => events(f).some((e) => /^captureEvidence/.test(e.activityTaskScheduledEventAttributes?.activityType?.name ?? '')));
  assert.deepEqual(remote, [], 'v5 schedules no evidence activity');
  assert.ok(v5.filter((f) => localRuns(events(f), 'captureEvidenceSet').some((r) => r.result)).length >= 7, 'recorded v5 containments captured evidence locally');
  // What v5 is for: fewer events per full ladder than v4 (the same ladder, recorded on each).
  assert.ok(events('v5-timed-ladder.json').length < events('v4-timed-ladder.json').length);
});

test('v6 histories carry one patch marker, their own, and read the policy and suppress in one local activity', () => {
  const v6 = onlyMarker('v6', 'v6-suppress-with-the-policy', 9);
  const events = (f: string) => histories.find((h) => h.file === f)!.history.events ?? [];
  // A dry run changes nothing, so it only reads (validates) the policy; every other containment's first step also suppresses.
  const firstStep = (f: string) => localRuns(events(f), 'loadPolicyAndSuppress').length;
  assert.deepEqual(v6.filter((f) => (f === 'v6-dry-run.json' ? firstStep(f) !== 0 || !localRuns(events(f), 'loadPolicy').length : firstStep(f) !== 1)), []);
  assert.ok(localRuns(events('v6-timed-ladder.json'), 'loadPolicyAndSuppress')[0]!.result, 'the first step recorded its attempts');
  assert.deepEqual(localRuns(events('v6-timed-ladder.json'), 'suppress'), [], 'no suppression needed a step of its own');
  // Two local activities fewer per containment (the policy and the first suppression): fewer events than v5.
  assert.ok(events('v6-timed-ladder.json').length <= events('v5-timed-ladder.json').length, `${events('v6-timed-ladder.json').length} events against v5's ${events('v5-timed-ladder.json').length}`);
});

test('v7 histories carry one patch marker, their own, and take the revoked sessions\' receivers from the first step', () => {
  onlyMarker('v7', 'v7-receivers-with-the-policy', 9);
  const events = (f: string) => histories.find((h) => h.file === f)!.history.events ?? [];
  const first = localRuns(events('v7-timed-ladder.json'), 'loadPolicyAndSuppress')[0]!.result as { receivers?: Record<string, string[]> };
  assert.deepEqual(first.receivers, { 'session-revoked': [] }, 'the first step says who receives the revoked sessions');
  // v6 read the list in a step of its own after the first suppression; v7 reads none for it, and
  // every later emit (the later stages'; an escalation's revoked sessions) still reads it afresh.
  assert.equal(localRuns(events('v7-timed-ladder.json'), 'ssfReceivers').length, localRuns(events('v6-timed-ladder.json'), 'ssfReceivers').length - 1);
  assert.equal(localRuns(events('v6-escalation-abort.json'), 'ssfReceivers').length, 1);
  assert.equal(localRuns(events('v7-escalation-abort.json'), 'ssfReceivers').length, 1, "the escalation's revoked sessions read the receivers when they happen");
  assert.ok(events('v7-timed-ladder.json').length < events('v6-timed-ladder.json').length, `${events('v7-timed-ladder.json').length} events against v6's ${events('v6-timed-ladder.json').length}`);
});

test('v8 histories carry one patch marker, their own, and capture the evidence in the first step', () => {
  const v8 = onlyMarker('v8', 'v8-evidence-with-the-first-step', 9);
  const events = (f: string) => histories.find((h) => h.file === f)!.history.events ?? [];
  const first = localRuns(events('v8-timed-ladder.json'), 'loadPolicyAndSuppress')[0]!.result as { evidence?: { kind: string; ref?: unknown }[] };
  assert.deepEqual(first.evidence?.map((o) => o.kind).sort(), ['auth-events', 'grants', 'sessions'], 'the first step captured every kind the plan asks for');
  assert.ok(first.evidence!.every((o) => o.ref), 'each with its reference');
  // v7 took evidence in a local activity of its own after the first step; v8 takes none where the
  // first step captured every kind. Slow or failed evidence, and an escalation's new kinds, still take one.
  const captures = (f: string) => localRuns(events(f), 'captureEvidenceSet').length;
  const complete = v8.filter((f) => ((localRuns(events(f), 'loadPolicyAndSuppress')[0]?.result as FirstStep | undefined)?.evidence ?? []).length === 3);
  assert.ok(complete.length >= 5, `the first step captured every kind in ${complete.join(', ')}`);
  assert.deepEqual(complete.filter((f) => captures(f) > 0), []);
  assert.deepEqual(v8.filter((f) => captures(f) > captures(f.replace(/^v8-/, 'v7-'))), [], 'no v8 containment takes more captures than v7 did');
  assert.ok(captures('v7-timed-ladder.json') > 0);
  assert.ok(events('v8-timed-ladder.json').length < events('v7-timed-ladder.json').length, `${events('v8-timed-ladder.json').length} events against v7's ${events('v7-timed-ladder.json').length}`);
});

test('every recorded containment replays deterministically on the current workflow code', async () => {
  const results = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories.map(({ workflowId, history }) => ({ workflowId, history })))) results.push(r);
  const failures = results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error!.message}`);
  assert.deepEqual(failures, []);
  assert.equal(results.length, histories.length);
});

test('replay catches an incompatible change to the workflow', async () => {
  const changed = await bundleWorkflowCode({ workflowsPath: require.resolve('./changed-workflow'), logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } });
  const failed = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: changed }, histories.map(({ workflowId, history }) => ({ workflowId, history })))) if (r.error) failed.push(r.workflowId);
  assert.equal(failed.length, histories.length, 'a non-deterministic change went unnoticed');
});
