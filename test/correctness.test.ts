// Containments that stay right for weeks (issue #10, the ladder): races between commands and
// running stages, failures that must end in needs-attention with the rollback path intact,
// signals while closing, and long lives through continue-as-new.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { readSealPublicKey } from '../activities/command-seal';
import { prepareCommand, submitSignal } from '../client/containments';
import { parsePolicy } from '../workflows/policy';
import type { ContainmentState } from '../workflows/schemas';
import { closeTestEnv, testToken } from './harness';
import { approvalLadder, labIdentity, policyWith } from './fixtures';
import { scenario, type Scenario } from './scenario';

after(closeTestEnv);

const ORIGINAL_GRANTS = ['orders:read', 'orders:write', 'payments:admin'];

/** Removes the identity from the lab (as if deleted upstream); `restore` puts it back as it was. */
async function vanish(sc: Scenario): Promise<() => Promise<void>> {
  const kept = await sc.identity();
  await sc.lab.dir.update((s) => void delete s.identities[sc.signal.identityId]);
  return () => sc.lab.dir.update((s) => void (s.identities[sc.signal.identityId] = kept));
}

/** The lab answers nothing for `ms` (a provider outage). */
const outage = (sc: Scenario, ms: number) => sc.lab.dir.update((s) => void (s.unavailableUntil = new Date(Date.now() + ms).toISOString()));

describe('commands race running stages', () => {
  test('a double-clicked advance passes one gate only: the second is refused, the next gate still waits', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      const waiting = await sc.until('approval to restrict', (s) => s.waiting?.stage === 'restrict');
      const sealKey = readSealPublicKey(sc.config.dataDir);
      const handle = sc.client.workflow.getHandle(sc.workflowId);
      // Two clicks on the same screen: both name the gate that was waiting when the page loaded.
      const clicks = await Promise.all([1, 2].map(async () => prepareCommand(sc.client, sc.workflowId, { type: 'advance', reason: 'approve', gate: waiting.waiting!.gate }, { token: await testToken('ann', ['responder']), sealKey })));
      const results = await Promise.allSettled(clicks.map((c) => handle.executeUpdate('command', { args: [c] })));
      assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
      const state = await sc.until('waiting for approval to rotate', (s) => s.waiting?.stage === 'rotate');
      assert.equal(state.position, 'restricted');
      assert.equal(state.receipts.rotated, undefined, 'the second click must not rotate the credential');
      assert.deepEqual((await sc.mutations()).filter((m) => m.op === 'rotate'), []);
      // A late advance naming the old gate is refused with the gate that is waiting now.
      await assert.rejects(sc.command('advance', 'late', { gate: waiting.waiting!.gate }), new RegExp(`no longer waiting: "${state.waiting!.gate}" is`));
    });
  });
});

describe('every failure on the ladder ends in needs-attention, with the rollback path intact', () => {
  test('a failing dependency check (identity gone) asks for a human instead of failing the workflow; advance retries the check', async () => {
    const policy = policyWith([
      { stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: ['orders:read'] },
      { stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '200ms' } },
    ]);
    const dependents = [{ name: 'payments <b>job</b> *bold*', address: '10.0.0.9' }];
    await scenario({ policy, identity: { ...labIdentity(), dependents } }, async (sc) => {
      await sc.until('waiting on dependents', (s) => s.position === 'restricted' && s.waiting?.for === 'dependencies' && s.waiting.detail.includes('payments'));
      // Provider text reaches the UI's markdown escaped.
      const meta = await sc.client.workflow.getHandle(sc.workflowId).query<{ currentDetails: string }>('__temporal_workflow_metadata');
      assert.ok(meta.currentDetails.includes('payments \\<b\\>job\\</b\\> \\*bold\\*'), meta.currentDetails);
      const restore = await vanish(sc);
      const attention = await sc.until('needs-attention', (s) => s.status === 'needs-attention');
      assert.match(attention.waiting!.detail, /dependency check before disable failed: .*does not exist/);
      assert.equal((await sc.client.workflow.getHandle(sc.workflowId).describe()).status.name, 'RUNNING', 'the workflow did not fail');
      await restore();
      await sc.command('advance', 'identity restored: check again');
      await sc.until('checking dependents again', (s) => s.status === 'active' && s.waiting?.for === 'dependencies');
      await sc.command('dependencies-cleared', 'job moved off this account');
      await sc.until('contained', (s) => s.status === 'contained' && s.position === 'disabled');
      // The rollback path survived the failure: grants come back exactly.
      await sc.command('rollback', 'false positive');
      await sc.until('rolled back', (s) => s.status === 'rolled-back');
      assert.deepEqual((await sc.identity()).grants, ORIGINAL_GRANTS);
    });
  });

  test('advance from needs-attention retries the failed stage now, without re-entering its gate', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      await sc.until('approval to restrict', (s) => s.waiting?.stage === 'restrict');
      await sc.command('advance', 'restrict');
      await sc.until('approval to rotate', (s) => s.waiting?.stage === 'rotate');
      const restore = await vanish(sc);
      await sc.command('advance', 'rotate');
      const failed = await sc.until('needs-attention', (s) => s.status === 'needs-attention');
      assert.equal(failed.waiting?.for, 'attention');
      await restore();
      await sc.command('advance', 'retry rotate');
      // One advance retries: the rotate gate's approval is not asked again.
      const rotated = await sc.until('rotated', (s) => s.position === 'rotated');
      assert.equal(rotated.waiting?.stage ?? 'disable', 'disable');
      assert.equal(rotated.actions.filter((a) => a.action === 'command:advance' && a.outcome === 'done').length, 3);
    });
  });

  test('a rollback that fails part-way keeps the containment open; "rollback" again finishes it', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      for (const stage of ['restrict', 'rotate', 'disable']) {
        await sc.until(`approval to ${stage}`, (s) => s.waiting?.stage === stage);
        await sc.command('advance', stage);
      }
      await sc.until('contained', (s) => s.status === 'contained');
      const restore = await vanish(sc);
      await sc.command('rollback', 'false positive');
      const stuck = await sc.until('needs-attention after a failed rollback', (s) => s.status === 'needs-attention');
      assert.match(stuck.waiting!.detail, /rollback failed part-way/);
      assert.equal((await sc.client.workflow.getHandle(sc.workflowId).describe()).status.name, 'RUNNING', 'the containment stays open');
      await assert.rejects(sc.command('advance', 'retry?', { gate: stuck.waiting!.gate }), /"rollback" retries it, "abort" abandons it/);
      await restore();
      await sc.command('rollback', 'identity back: retry');
      const done = await sc.until('rolled back', (s) => s.status === 'rolled-back');
      const identity = await sc.identity();
      assert.deepEqual(identity.grants, ORIGINAL_GRANTS);
      assert.equal(identity.enabled, true);
      // Each undo ran once successfully: the reissue is not repeated.
      assert.equal((await sc.mutations()).filter((m) => m.op === 'rotate').length, 2);
      assert.ok(done.receipts.undone?.includes('restrict'));
    });
  });
});

describe('signals and closing', () => {
  test('a hostile signal during a rollback is not dropped: a new containment follows the closed one', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      await sc.until('approval to restrict', (s) => s.waiting?.stage === 'restrict');
      await sc.command('advance', 'restrict');
      await sc.until('restricted', (s) => s.position === 'restricted');
      const firstRun = (await sc.client.workflow.getHandle(sc.workflowId).describe()).runId;
      // The rollback's undo steps retry through the outage: longer than the local retry threshold
      // (2 s), so they back off on server timers and the close spans several workflow tasks
      // (shorter, v4's local retries finish the whole close inside one task, before the signal).
      await outage(sc, 6000);
      await sc.command('rollback', 'false positive');
      await sc.until('closing', (s) => s.actions.some((a) => a.action === 'command:rollback'));
      await sc.submit({ signalId: 'sig-during-close', trigger: 'privilege-escalation' });
      // The rolled-back run continues as a fresh containment started from the new signal.
      const next = await sc.until('a new containment from the signal', (s) => s.follows?.runId === firstRun && s.signals.some((x) => x.signalId === 'sig-during-close'), 30_000);
      assert.match(next.follows!.closedReason, /rolled back by tester/);
      await sc.until('suppressed again', (s) => s.position !== 'new');
      assert.deepEqual((await sc.identity()).sessions, []);
    });
  });

  test('after a containment closed, a new signal starts a new one; a signal the closed run saw changes nothing', async () => {
    const policy = parsePolicy({ version: 'short', rules: [{ name: 'watch', severity: 10, match: {}, suppress: ['force-step-up'], evidence: [], stages: [], retainFor: '1s' }] });
    await scenario({ policy }, async (sc) => {
      const handle = sc.client.workflow.getHandle(sc.workflowId);
      const first = (await handle.result()) as ContainmentState;
      assert.match(first.closedReason!, /retention of 1s ended/);
      const again = await submitSignal(sc.client, sc.signal, { taskQueue: sc.config.taskQueue });
      assert.ok(again.duplicateOf, 'a signal id seen by the closed run is a no-op');
      const fresh = await submitSignal(sc.client, { ...sc.signal, signalId: 'sig-new' }, { taskQueue: sc.config.taskQueue });
      assert.equal(fresh.duplicateOf, undefined);
      assert.notEqual(fresh.runId, again.runId);
      const state = await sc.until('the new run', (s) => s.signals.some((x) => x.signalId === 'sig-new'));
      assert.equal(state.signals.length, 1);
    });
  });

  test('rollback waits for a suppression still running from an escalation: the lift lands after the block', async () => {
    const policy = parsePolicy({
      version: 'escalate',
      rules: [
        { name: 'harsh', severity: 90, match: { minConfidence: 0.9 }, suppress: ['revoke-sessions', 'block-high-risk-apis'], evidence: ['grants'], stages: [], retainFor: '1h' },
        { name: 'watch', severity: 10, match: {}, suppress: ['force-step-up'], evidence: [], stages: [], retainFor: '1h' },
      ],
    });
    await scenario({ policy, signal: { confidence: 0.5 } }, async (sc) => {
      await sc.until('watching', (s) => s.status === 'watching');
      await outage(sc, 2000); // the escalation's block retries through the outage
      await sc.submit({ signalId: 'sig-harsh', confidence: 0.95 });
      await sc.until('escalated', (s) => s.plan.rule === 'harsh');
      await sc.command('rollback', 'false positive');
      await sc.until('rolled back', (s) => s.status === 'rolled-back', 30_000);
      const ops = (await sc.mutations()).map((m) => m.op);
      assert.ok(ops.indexOf('block-high-risk-apis') >= 0 && ops.indexOf('block-high-risk-apis') < ops.indexOf('lift:block-high-risk-apis'), ops.join(', '));
      assert.equal((await sc.identity()).highRiskApisBlocked, false, 'the block must not land after its lift');
      // The escalated plan's evidence was captured too.
      assert.ok((await sc.state()).evidence.some((e) => e.kind === 'grants'));
    });
  });
});

describe('long lives', () => {
  test('continue-as-new carries the whole state: a long dependency wait and hundreds of signals keep each run short and the rollback path intact', async () => {
    const policy = policyWith([
      { stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: ['orders:read'] },
      { stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '20ms', maxWait: '30d' } },
    ]);
    await scenario({ policy, historyLimit: 200, identity: { ...labIdentity(), dependents: [{ name: 'nightly job' }] } }, async (sc) => {
      // A dependency check every 20 ms adds a few events a second (one marker, a timer, a task);
      // the flood of signals is what fills history fast enough for several runs in a test.
      await sc.until('waiting for dependents to go', (s) => s.waiting?.for === 'dependencies', 30_000);
      const handle = sc.client.workflow.getHandle(sc.workflowId);
      for (let i = 0; i < 400; i++) await handle.signal('identitySignal', { ...sc.signal, signalId: `flood-${i}` });
      const flooded = await sc.until('all signals counted', (s) => (s.signalCount ?? 0) >= 401 && (s.run ?? 1) >= 3, 90_000);
      assert.ok(flooded.signals.length <= 20, 'only recent signals stay in state');
      // A signal seen several runs ago is still a no-op.
      await handle.signal('identitySignal', { ...sc.signal, signalId: 'flood-0' });
      await handle.signal('identitySignal', { ...sc.signal, signalId: 'flood-last' });
      const counted = await sc.until('the last signal counted', (s) => s.signals.some((x) => x.signalId === 'flood-last'));
      assert.equal(counted.signalCount, 402);
      // Every run stayed short; the last one still holds the rollback receipts.
      const runs: number[] = [];
      for await (const w of sc.client.workflow.list({ query: `WorkflowId = "${sc.workflowId}"` })) {
        runs.push((await sc.client.workflow.getHandle(sc.workflowId, w.runId).fetchHistory()).events!.length);
      }
      assert.ok(runs.length >= 3, `${runs.length} runs`);
      assert.ok(Math.max(...runs) < 600, `history events per run: ${runs.join(', ')}`);
      assert.deepEqual(counted.receipts.grantsBefore, ORIGINAL_GRANTS);
      await sc.command('rollback', 'false positive after a long wait');
      await sc.until('rolled back', (s) => s.status === 'rolled-back', 30_000);
      assert.deepEqual((await sc.identity()).grants, ORIGINAL_GRANTS);
    });
  });

  test('a dependency wait has a maximum, after which a human decides', async () => {
    const policy = policyWith([{ stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '100ms', maxWait: '1s' } }]);
    await scenario({ policy, identity: { ...labIdentity(), dependents: [{ name: 'ci' }] } }, async (sc) => {
      const stuck = await sc.until('needs-attention after the maximum wait', (s) => s.status === 'needs-attention', 20_000);
      assert.match(stuck.waiting!.detail, /after the maximum wait of 1s/);
      await sc.command('advance', 'owner confirmed: disable');
      await sc.until('disabled', (s) => s.position === 'disabled');
    });
  });
});
