// What an operator sees and can do from Temporal itself: triage search attributes (set only on
// change), the one-line status, the ready-made views, cancellation requests (refused, recorded, the
// ladder goes on), dry runs that close at once, and `cordon list` / `cordon evidence`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, test } from 'node:test';
import type { temporal } from '@temporalio/proto';
import { formatList, formatState } from '../client/cli';
import { listContainments, submitSignal } from '../client/containments';
import { EvidenceStore } from '../activities/evidence-store';
import { formatEvidence, readEvidence } from '../client/evidence';
import { VIEWS, uiLink } from '../client/views';
import { resolveTemporalCli } from '../scripts/temporal-cli';
import { SA } from '../workflows/search-attributes';
import { closeTestEnv, testEnv } from './harness';
import { approvalLadder, eventually, policyWith, signal } from './fixtures';
import { scenario } from './scenario';

after(closeTestEnv);

type Event = temporal.api.history.v1.IHistoryEvent;
const EventType = { upsert: 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES' };
const typeName = (e: Event) => String(e.eventType);
const decode = (p: temporal.api.common.v1.IPayload) => JSON.parse(Buffer.from(p.data ?? new Uint8Array()).toString('utf8')) as unknown;

async function historyOf(client: Awaited<ReturnType<typeof testEnv>>['client'], workflowId: string): Promise<Event[]> {
  return (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}

/** Each upsert's attributes, decoded, in history order. */
function upserts(events: Event[]): Record<string, unknown>[] {
  return events
    .filter((e) => typeName(e) === EventType.upsert || e.upsertWorkflowSearchAttributesEventAttributes)
    .map((e) => Object.fromEntries(Object.entries(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).map(([k, p]) => [k, decode(p)])));
}

describe('triage search attributes', () => {
  test('waiting-for, since and next deadline follow the ladder, and each upsert carries only what changed', async () => {
    const policy = policyWith([
      { stage: 'restrict', gate: { type: 'timer', after: '1h' }, keep: ['orders:read'] },
      { stage: 'rotate', gate: { type: 'approval' } },
    ]);
    await scenario({ policy }, async (sc) => {
      const t0 = Date.now();
      const timer = await sc.until('waiting on the timer', (s) => s.waiting?.for === 'timer');
      const attrs = async () => (await sc.client.workflow.getHandle(sc.workflowId).describe()).typedSearchAttributes;
      await eventually(async () => (await attrs()).get(SA.waitingFor) === 'timer', 'CordonWaitingFor = timer');
      let sa = await attrs();
      assert.equal(sa.get(SA.dryRun), false);
      assert.equal(sa.get(SA.nextDeadline)?.toISOString(), new Date(timer.waiting!.deadline!).toISOString());
      assert.ok(Math.abs(sa.get(SA.nextDeadline)!.getTime() - (t0 + 3_600_000)) < 30_000, 'the deadline is the timer\'s, an hour out');
      assert.equal(sa.get(SA.stageSince)?.toISOString(), new Date(timer.since!).toISOString());

      // Advancing past the timer: the next wait is an approval with no deadline.
      await sc.command('advance', 'run restrict now');
      const approval = await sc.until('waiting for approval', (s) => s.waiting?.for === 'approval');
      await eventually(async () => (await attrs()).get(SA.waitingFor) === 'approval', 'CordonWaitingFor = approval');
      sa = await attrs();
      assert.equal(sa.get(SA.stage), 'restricted');
      assert.equal(sa.get(SA.nextDeadline), undefined, 'an approval has no deadline: the attribute is cleared');
      assert.ok(sa.get(SA.stageSince)!.getTime() > new Date(timer.since!).getTime(), 'since moves when the containment changes');
      assert.equal(sa.get(SA.stageSince)?.toISOString(), new Date(approval.since!).toISOString());

      // Upsert only on change: no upsert repeats a value the attribute already has.
      const last = new Map<string, string>();
      for (const u of upserts(await historyOf(sc.client, sc.workflowId))) {
        for (const [k, v] of Object.entries(u)) {
          const text = JSON.stringify(v);
          assert.notEqual(last.get(k), text, `${k} upserted again with the same value ${text}`);
          last.set(k, text);
        }
      }
      assert.ok(last.size >= 6, `every triage attribute was set: ${[...last.keys()].join(', ')}`);

      // The timeline's labels: every activity and timer carries a summary.
      const events = await historyOf(sc.client, sc.workflowId);
      // Provider calls are local activities since v4: their markers carry the summary.
      const summaries = events.filter((e) => e.activityTaskScheduledEventAttributes || e.timerStartedEventAttributes || e.markerRecordedEventAttributes?.markerName === 'core_local_activity').map((e) => (e.userMetadata?.summary ? decode(e.userMetadata.summary) : `(none on event ${e.eventId})`));
      const on = `${sc.signal.identityId} on lab`;
      // v6: the first step reads the policy and suppresses (v8: and captures evidence); an action gets a step of its own only to retry.
      for (const want of [`policy: load the worker's approved policy, suppress ${on} and capture its evidence`, 'gate: restrict after 1h', `inspect: ${on} before restrict`, `restrict: narrow ${on} to 1 grant(s)`]) {
        assert.ok(summaries.includes(want), `no "${want}" among ${JSON.stringify(summaries)}`);
      }
      assert.ok(!summaries.some((x) => String(x).startsWith('(none')), `unlabelled steps: ${JSON.stringify(summaries)}`);
    });
  });

  test('the one-line status leads the details: stage, since when, what happens next and when', async () => {
    await scenario({ policy: policyWith([{ stage: 'restrict', gate: { type: 'timer', after: '5m' }, keep: [] }]) }, async (sc) => {
      await sc.until('waiting on the timer', (s) => s.waiting?.for === 'timer');
      const details = await eventually(async () => {
        // What the UI shows as "Current Details": the SDK's built-in metadata query.
        const d = (await sc.client.workflow.getHandle(sc.workflowId).query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails;
        return d?.includes('next: restrict') && d;
      }, 'details with the timer');
      const headline = details.split('\n')[0]!;
      assert.match(headline, /^\*\*suppressed\*\* · active since \d\d:\d\d:\d\d UTC · next: restrict at \d\d:\d\d:\d\d UTC, in 5m \(gate `restrict#\d+`\); "advance" runs it now$/, headline);
      // Actions in time order, one per line, with their reasons; provider text escaped for markdown.
      const actions = details.split('\n').filter((l) => l.startsWith('- '));
      assert.ok(actions.length >= 3 && actions.length <= 5, `a few actions: ${actions.length}`);
      const times = actions.map((l) => l.slice(2, 10));
      assert.deepEqual(times, [...times].sort(), 'in time order');
      for (const line of actions) assert.match(line, /^- \d\d:\d\d:\d\d (suppress|evidence):[a-z\\-]+ \*\*done\*\* \(policy\): \S/, line);
      for (const line of actions) {
        const text = line.slice(line.indexOf('): ') + 3);
        assert.doesNotMatch(text, /(^|[^\\])[()*_\-`[\]]/, `provider text reaches the markdown unescaped: ${text}`);
      }
    });
  });
});

describe('cancellation from the UI or API', () => {
  test('is refused and recorded; activities in flight finish and the ladder goes on', async () => {
    // Evidence takes 12 s, so it is in flight when the cancellation arrives. From v5 it runs in the
    // first workflow task, which the SDK heartbeats at 8 s (80% of the task timeout): the state and
    // the cancellation get in then, while evidence goes on.
    await scenario({ policy: policyWith(approvalLadder()), identity: { faults: { evidenceDelayMs: 12_000 } } }, async (sc) => {
      const waiting = await sc.until('waiting for approval, evidence still running', (s) => s.waiting?.for === 'approval');
      assert.equal(waiting.actions.filter((a) => a.action.startsWith('evidence:')).length, 0, 'evidence must still be in flight');
      const cli = await resolveTemporalCli();
      const env = await testEnv();
      await promisify(execFile)(cli.path!, ['workflow', 'cancel', '--address', env.address, '--workflow-id', sc.workflowId]);

      const state = await sc.until('the cancellation on the record', (s) => s.actions.some((a) => a.action === 'cancel'));
      const cancel = state.actions.find((a) => a.action === 'cancel')!;
      assert.equal(cancel.outcome, 'rejected');
      assert.equal(cancel.actor, 'unknown (Temporal does not say who)');
      assert.match(cancel.detail, /refused, the containment goes on/);
      assert.match(cancel.detail, new RegExp(`cordon command ${sc.workflowId} abort`));

      // The evidence in flight finished (it was not cut off), and the gate still waits.
      const captured = await sc.until('evidence captured', (s) => s.actions.filter((a) => a.action.startsWith('evidence:')).length === 3);
      assert.deepEqual(captured.actions.filter((a) => a.action.startsWith('evidence:')).map((a) => a.outcome), ['done', 'done', 'done']);
      assert.equal(captured.waiting?.gate, waiting.waiting!.gate);
      const events = await historyOf(sc.client, sc.workflowId);
      assert.ok(events.some((e) => e.workflowExecutionCancelRequestedEventAttributes), 'Temporal recorded the request');
      assert.ok(!events.some((e) => e.activityTaskCancelRequestedEventAttributes), 'no activity was cancelled');
      assert.equal((await sc.client.workflow.getHandle(sc.workflowId).describe()).status.name, 'RUNNING');

      // The ladder goes on: an operator's advance still restricts, then an abort closes it as usual.
      await sc.command('advance', 'approved after the cancellation attempt');
      await sc.until('restricted', (s) => s.position === 'restricted');
      assert.deepEqual((await sc.identity()).grants, ['orders:read']);
      await sc.command('abort', 'done for now');
      const closed = await sc.client.workflow.getHandle(sc.workflowId).result();
      assert.equal(closed.status, 'aborted');
      assert.equal((await sc.client.workflow.getHandle(sc.workflowId).describe()).status.name, 'COMPLETED');
    });
  });
});

describe('dry runs', () => {
  test('a dry run closes as soon as it has walked the ladder, and stays out of the views', async () => {
    // Long timers, approvals and a 30-day retention: a real containment would wait on all of them.
    const policy = policyWith([
      { stage: 'restrict', gate: { type: 'timer', after: '5m' }, keep: [] },
      { stage: 'rotate', gate: { type: 'approval' } },
      { stage: 'disable', gate: { type: 'dependency-check' } },
    ], { retainFor: '30d' });
    await scenario({ policy, dryRun: true }, async (sc) => {
      const t0 = Date.now();
      const result = await sc.client.workflow.getHandle(sc.workflowId).result();
      assert.ok(Date.now() - t0 < 15_000, 'the dry run waited on its gates or its retention');
      assert.equal(result.closedReason, 'dry run walked the whole ladder');
      const desc = await sc.client.workflow.getHandle(sc.workflowId).describe();
      assert.equal(desc.status.name, 'COMPLETED');
      assert.equal(desc.typedSearchAttributes.get(SA.dryRun), true);
      for (const v of VIEWS) {
        const ids: string[] = [];
        for await (const w of sc.client.workflow.list({ query: `${v.query} AND WorkflowId = '${sc.workflowId}'` })) ids.push(w.workflowId);
        assert.deepEqual(ids, [], `the dry run is in the "${v.name}" view`);
      }
      // It is a containment workflow all the same: only CordonDryRun keeps it out.
      await eventually(async () => (await sc.client.workflow.count(`WorkflowType = 'containment' AND WorkflowId = '${sc.workflowId}'`)).count === 1, 'the dry run in visibility');
    });
  });
});

test('the README lists every ready-made view with the link npm start and cordon demo print', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  for (const v of VIEWS) assert.ok(readme.includes(uiLink('http://127.0.0.1:8233', 'default', v.query)), `the README lacks the "${v.name}" link`);
});

describe('cordon list and cordon evidence', () => {
  test('list has a header and waiting, since and deadline columns; evidence prints a verified artifact by its hash', async () => {
    await scenario({ policy: policyWith([{ stage: 'restrict', gate: { type: 'timer', after: '1h' }, keep: [] }]) }, async (sc) => {
      const state = await sc.until('waiting on the timer with evidence', (s) => s.waiting?.for === 'timer' && s.actions.filter((a) => a.action.startsWith('evidence:') && a.outcome === 'done').length === 3);
      const rows = await eventually(async () => {
        const r = await listContainments(sc.client, { identity: sc.signal.identityId });
        return r[0]?.waitingFor === 'timer' && r;
      }, 'the containment in the list');
      const lines = formatList(rows).split('\n');
      assert.match(lines[0]!, /^WORKFLOW ID\s+STATUS\s+STAGE\s+WAITING FOR\s+SINCE \(UTC\)\s+NEXT DEADLINE\s+TRIGGER\s+RISK\s+TEMPORAL$/);
      const cells = lines[1]!.split(/\s{2,}/);
      assert.deepEqual(cells.slice(0, 4), [sc.workflowId, 'active', 'suppressed', 'timer']);
      assert.equal(cells[4], state.since!.slice(0, 16).replace('T', ' '));
      assert.equal(cells[5], state.waiting!.deadline!.slice(0, 16).replace('T', ' '));

      // describe names the command; the command prints the artifact after checking its hash.
      const ref = state.evidence.find((e) => e.kind === 'sessions')!;
      assert.match(formatState(state), new RegExp(`sessions\\s+\\d+ B  cordon evidence ${ref.sha256}`));
      const store = new EvidenceStore(sc.config.evidenceDir);
      const e = await readEvidence(store, ref.sha256.slice(0, 12));
      assert.equal(e.sha256, ref.sha256);
      assert.equal(e.containmentId, sc.workflowId);
      assert.match(formatEvidence(e), /"sessions": \[/);
      await assert.rejects(readEvidence(store, 'f'.repeat(64)), /no evidence f{64}/);
      await assert.rejects(readEvidence(store, '../../etc'), /not a SHA-256/);
    });
  });
});

test('a dry run is marked at its start, before its first workflow task, so no view ever shows it', async () => {
  const { client } = await testEnv();
  // No worker polls this queue: whatever the attributes say now, the client set them.
  const started = await submitSignal(client, signal(), { taskQueue: 'cordon-no-worker', dryRun: true });
  const handle = client.workflow.getHandle(started.workflowId);
  try {
    assert.equal((await handle.describe()).typedSearchAttributes.get(SA.dryRun), true);
  } finally {
    await handle.terminate('test cleanup');
  }
});
