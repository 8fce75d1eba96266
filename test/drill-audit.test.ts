// The drill's journal audit must see a mutation repeated with no effect (a second "revoke" that
// finds nothing left to revoke), which the changed-only journal cannot, while accepting the
// no-op a legitimate retry after a worker kill or a server restart makes.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { LabProvider, type Call } from '../activities/providers/lab';
import type { SuppressionAction, Scope } from '../workflows/schemas';
import { auditCalls } from '../scripts/drill-core';
import { describeContainment, submitSignal } from '../client/containments';
import { closeTestEnv, isolatedConfig, withWorker } from './harness';
import { eventually, labIdentity, policyWith, signal } from './fixtures';

after(closeTestEnv);

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const at = (s: number) => Date.parse(t(s));
let seq = 0;
const call = (over: Partial<Call>): Call => ({ seq: ++seq, at: t(0), identity: 'drill-0001', op: 'revoke-sessions', changed: true, workflowId: 'cordon/lab/drill-0001', runId: 'run-1', activityId: '3', attempt: 1, ...over });

test('the audit accepts a no-op retry after a kill and flags every repeat nothing explains', () => {
  const applied = call({ at: t(10) });
  // Applied, then the worker was killed before it reported; the retry finds it done.
  assert.deepEqual(auditCalls([applied, call({ at: t(45), attempt: 2, changed: false })], [at(12)]), []);
  // The same retry with no kill or restart in between: nothing explains it.
  assert.match(auditCalls([applied, call({ at: t(45), attempt: 2, changed: false })], [at(50)]).join('\n'), /drill-0001: revoke-sessions repeated by attempt 2 .* no worker kill or server restart/);
  // The same attempt applying it twice (a loop inside the activity).
  assert.match(auditCalls([applied, call({ at: t(11), changed: false })], [at(10)]).join('\n'), /attempt 1 .* twice/);
  // A second activity asked for it: the workflow ran the step again, a kill or not.
  assert.match(auditCalls([applied, call({ at: t(40), activityId: '9', changed: false })], [at(20)]).join('\n'), /requested by 2 activities/);
  // A local activity run again from attempt 1 by the next worker after a kill: explained by the kill;
  // without a kill between, or as a regular activity, the same attempt twice is still a duplicate.
  const local = call({ at: t(10), local: true, activityId: '5' });
  assert.deepEqual(auditCalls([local, call({ at: t(25), local: true, activityId: '5', changed: false })], [at(12)]), []);
  assert.match(auditCalls([local, call({ at: t(25), local: true, activityId: '5', changed: false })], [at(30)]).join('\n'), /attempt 1 .* twice/);
  // The same step asked under a later id after a kill: the task that ran it as id 9 died, and when
  // it ran again a retry that backed off on a timer took id 9. The histories record which is which.
  const lost = call({ at: t(10), local: true, activityId: '9', activityType: 'setEnabled' });
  const redone = call({ at: t(25), local: true, activityId: '10', activityType: 'setEnabled', changed: false });
  const history = new Map([['run-1/9', 'inspectIdentity'], ['run-1/10', 'setEnabled']]);
  assert.deepEqual(auditCalls([lost, redone], [at(12)], history), []);
  assert.match(auditCalls([lost, redone], [at(30)], history).join('\n'), /attempt 1 .* twice/, 'no fault between: the step ran twice');
  assert.match(auditCalls([lost, redone], [at(12)]).join('\n'), /requested by 2 activities/, 'no history: two ids are two activities');
  const both = new Map([['run-1/9', 'setEnabled'], ['run-1/10', 'setEnabled']]);
  assert.match(auditCalls([lost, redone], [at(12)], both).join('\n'), /requested by 2 activities/, 'both recorded: the workflow asked twice');
  // v6: the first step's attempt and the action's own activity are judged as one. A first attempt
  // that failed (here journalled as changing nothing), then the action's own activity: fine.
  const first = (over: Partial<Call>) => call({ local: true, activityId: '1', activityType: 'loadPolicyAndSuppress', ...over });
  const own = (over: Partial<Call>) => call({ local: true, activityId: '2', activityType: 'suppress', ...over });
  assert.deepEqual(auditCalls([first({ at: t(10), changed: false }), own({ at: t(12), attempt: 3 })], []), []);
  // Both applied it: a double application, whatever the faults.
  assert.match(auditCalls([first({ at: t(10) }), own({ at: t(16) })], [at(12)]).join('\n'), /applied by both the first step and its own activity/);
  // The first step asking again after the own activity is a task run again: only a fault explains it.
  assert.deepEqual(auditCalls([own({ at: t(10) }), first({ at: t(20), changed: false })], [at(15)]), []);
  assert.match(auditCalls([own({ at: t(10) }), first({ at: t(20), changed: false })], [at(30)]).join('\n'), /first step asked for it again .* no fault between/);
  // Two activities other than the first step are still a step run twice.
  assert.match(auditCalls([own({ at: t(10) }), own({ at: t(20), activityId: '7', changed: false })], [at(15)]).join('\n'), /requested by 2 activities/);
  // Calls from outside any activity (seeding, a test) are not the drill's to judge.
  assert.deepEqual(auditCalls([call({ activityId: undefined, runId: undefined, attempt: undefined }), call({ activityId: undefined, runId: undefined, attempt: undefined, changed: false })], []), []);
});

/** A provider with a bug the changed-only journal cannot see: it applies each suppression twice. */
class TwiceLab extends LabProvider {
  override async suppress(identityId: string, action: SuppressionAction, scope?: Scope) {
    await super.suppress(identityId, action, scope);
    return super.suppress(identityId, action, scope);
  }
}

test('a real worker applying each suppression twice is caught by the audit, not by the mutation count', async () => {
  const config = isolatedConfig({ policy: policyWith([], { evidence: [], retainFor: '1h' }) });
  const lab = new TwiceLab(config.labFile);
  const s = signal();
  await lab.dir.seed({ [s.identityId]: labIdentity() });
  await withWorker(
    config,
    async ({ client }) => {
      const { workflowId } = await submitSignal(client, s, { taskQueue: config.taskQueue });
      await eventually(async () => (await describeContainment(client, workflowId)).position === 'suppressed', 'suppression');
      await client.workflow.getHandle(workflowId).terminate('test over');
    },
    new Map([['lab', lab]]),
  );
  const state = await lab.dir.read();
  // What the drill checked before: each op applied once. The bug passes it.
  const applied = state.mutations.map((m) => m.op).sort();
  assert.deepEqual(applied, ['block-high-risk-apis', 'revoke-sessions', 'revoke-tokens']);
  const found = auditCalls(state.calls, []);
  assert.equal(found.length, 3, found.join('\n'));
  for (const line of found) assert.match(line, new RegExp(`^${s.identityId}: .* attempt 1 .* twice`));
});
