// The containment ladder on the real dev server against the lab provider: the automatic path,
// evidence beside suppression, failures, low confidence, dry run, and no secret in history.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../activities/config';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabDirectory, LabProvider } from '../activities/providers/lab';
import type { FirstStep } from '../workflows/contract';
import type { SuppressionResult } from '../workflows/schemas';
import { testActivities } from './activities';
import { LocalVault } from '../activities/secret-sink';
import { EvidenceStore } from '../activities/evidence-store';
import { DEFAULT_POLICY } from '../workflows/default-policy';
import { closeTestEnv, testEnv } from './harness';
import { listContainments } from '../client/containments';
import { captured, eventually, labIdentity, policyWith, signal, timedLadder } from './fixtures';
import { scanTouchedHistories, scenario } from './scenario';
import { localRuns } from '../scripts/worker-process';

after(closeTestEnv);

const ORIGINAL_GRANTS = ['orders:read', 'orders:write', 'payments:admin'];

describe('the automatic ladder', () => {
  test('completes under a timed policy: sessions revoked, grants restricted, credential rotated, identity disabled', async () => {
    await scenario({ policy: policyWith(timedLadder()) }, async (sc) => {
      const state = await sc.until('contained with all evidence', (s) => s.status === 'contained' && captured(s) === 3);
      assert.equal(state.position, 'disabled');
      assert.deepEqual(state.receipts.grantsBefore, ORIGINAL_GRANTS);
      assert.equal(state.receipts.enabledBefore, true);
      const identity = await sc.identity();
      assert.deepEqual(identity.sessions, []);
      assert.deepEqual(identity.tokens, []);
      assert.deepEqual(identity.grants, ['orders:read']);
      assert.equal(identity.enabled, false);
      assert.equal(identity.highRiskApisBlocked, true);
      // The new secret is in the vault; the lab holds only its hash; history holds only a reference.
      const { secret } = await new LocalVault(sc.config.vaultDir).read(state.receipts.rotated!.ref);
      assert.equal(identity.credential?.sha256, LabDirectory.hashSecret(secret));
      // Evidence is content-addressed outside history: the hash recorded is the file's hash.
      for (const e of state.evidence) {
        const body = await readFile(new URL(e.uri));
        assert.equal(createHash('sha256').update(body).digest('hex'), e.sha256);
      }
      // The sessions suppression ended are evidence, written by the suppression step itself (the
      // session capture beside it may run after the kill and see none).
      assert.equal(state.evidence.length, 4);
      const ended = state.evidence.find((e) => e.kind === 'sessions' && !state.actions.some((a) => a.action === 'evidence:sessions' && a.detail.includes(e.sha256)))!;
      const endedBody = JSON.parse((await readFile(new URL(ended.uri))).toString()) as { body: string };
      assert.deepEqual((JSON.parse(endedBody.body) as { sessions: { name: string }[] }).sessions.map((x) => x.name).sort(), ['app-server', 'curl/8.5']);
      // Each mutation was applied exactly once.
      const ops = (await sc.mutations()).map((m) => m.op).sort();
      assert.deepEqual(ops, ['block-high-risk-apis', 'disable', 'restrict', 'revoke-sessions', 'revoke-tokens', 'rotate']);
    });
  });

  test('search attributes follow the containment so the UI can filter by stage', async () => {
    await scenario({ policy: policyWith(timedLadder()) }, async (sc) => {
      await sc.until('contained', (s) => s.status === 'contained');
      const rows = await eventually(async () => {
        const r = await listContainments(sc.client, { identity: sc.signal.identityId, stage: 'disabled', status: 'contained' });
        return r.length === 1 && r;
      }, 'visibility to show the contained identity');
      assert.equal(rows[0]!.workflowId, sc.workflowId);
      assert.equal(rows[0]!.provider, 'lab');
      assert.equal(rows[0]!.kind, 'service-account');
      assert.equal(rows[0]!.trigger, 'secret-exposed');
      assert.equal(rows[0]!.risk, 90);
    });
  });
});

describe('suppression and evidence run side by side', () => {
  test('slow evidence (2 s) does not delay suppression', async () => {
    await scenario({ policy: policyWith([]), identity: { faults: { evidenceDelayMs: 2000 } } }, async (sc) => {
      const state = await sc.until('evidence captured', (s) => captured(s) === 3);
      const suppressions = (await sc.mutations()).map((m) => Date.parse(m.at));
      const firstEvidence = Math.min(...state.actions.filter((a) => a.action.startsWith('evidence:')).map((a) => Date.parse(a.at)));
      assert.equal(suppressions.length, 3);
      // Every suppression was acknowledged by the provider before any delayed evidence finished.
      assert.ok(Math.max(...suppressions) < firstEvidence, 'suppression waited for evidence');
      assert.ok(Date.parse(state.suppressedAt!) < firstEvidence);
      // v8: slow evidence runs beside suppression in the first step, never through the task queue.
      const events = (await sc.client.workflow.getHandle(sc.workflowId).fetchHistory()).events ?? [];
      assert.equal((localRuns(events, 'loadPolicyAndSuppress')[0]!.result as FirstStep).evidence?.length, 3);
      assert.equal(localRuns(events, 'captureEvidenceSet').length, 0);
      assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'captureEvidenceSet').length, 0);
      const stored = await new EvidenceStore(sc.config.evidenceDir).list();
      assert.deepEqual(stored.sort(), state.evidence.map((e) => e.sha256).sort(), 'every stored artifact is on the record, none twice');
    });
  });

  test('evidence slower than the first step waits for (6 s) is joined by the capture that follows it, not read again', async () => {
    await scenario({ policy: policyWith([]), identity: { faults: { evidenceDelayMs: 6000 } } }, async (sc) => {
      const state = await sc.until('evidence captured', (s) => captured(s) === 3, 30_000);
      const events = (await sc.client.workflow.getHandle(sc.workflowId).fetchHistory()).events ?? [];
      assert.deepEqual((localRuns(events, 'loadPolicyAndSuppress')[0]!.result as FirstStep).evidence, [], 'past 5 s the first step returned without it');
      const later = localRuns(events, 'captureEvidenceSet').filter((r) => r.result);
      assert.equal(later.length, 1);
      assert.ok((later[0]!.result as { attempts: number }[]).every((o) => o.attempts === 1), 'each kind once');
      // A second read of a kind would have stored a second artifact (its capture time differs).
      const stored = await new EvidenceStore(sc.config.evidenceDir).list();
      assert.deepEqual(stored.sort(), state.evidence.map((e) => e.sha256).sort(), 'every stored artifact is on the record, none twice');
    });
  });

  test('the first step reads the policy, suppresses and captures evidence beside it; the workflow task that follows publishes once', async () => {
    await scenario({ policy: policyWith([]) }, async (sc) => {
      const state = await sc.until('evidence captured', (s) => captured(s) === 3 && s.position === 'suppressed');
      assert.ok(state.actions.filter((a) => a.action.startsWith('evidence:')).every((a) => a.outcome === 'done'));
      const events = (await sc.client.workflow.getHandle(sc.workflowId).fetchHistory()).events ?? [];
      // v6: one local activity read the policy and made every suppression, each with its own result.
      const [firstStep, ...more] = localRuns(events, 'loadPolicyAndSuppress');
      assert.equal(more.length, 0);
      const attempts = (firstStep!.result as FirstStep).attempts;
      assert.deepEqual(attempts.map((x) => x.action), ['revoke-sessions', 'revoke-tokens', 'block-high-risk-apis']);
      assert.ok(attempts.every((x) => 'result' in x && x.result.changed && x.result.at), JSON.stringify(attempts));
      assert.equal(localRuns(events, 'loadPolicy').length + localRuns(events, 'suppress').length, 0, 'no step of its own for the policy or a suppression');
      assert.deepEqual(state.actions.filter((a) => a.action.startsWith('suppress:')).map((a) => [a.action, a.outcome]), attempts.map((x) => [`suppress:${x.action}`, 'done']));
      // v8: the same step captured every kind the plan asks for, each with its own record.
      assert.deepEqual((firstStep!.result as FirstStep).evidence?.map((o) => o.kind), ['auth-events', 'sessions', 'grants']);
      assert.equal(localRuns(events, 'captureEvidenceSet').length, 0, 'no step of its own for evidence');
      assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes).length, 0, 'nothing went through the task queue');
      // One patch marker (v6), and one upsert of Cordon's attributes for suppression and the wait that follows it:
      // the client set the first ones at start, and v4 upserted three times here.
      const patches = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
      assert.equal(patches.length, 1);
      // (Queries during the first task may split it in two, but never between suppression and its wait.)
      const upserts = events.map((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {})).filter((k) => k.some((n) => n.startsWith('Cordon')));
      assert.equal(upserts.length, 1, JSON.stringify(upserts));
      assert.ok(upserts[0]!.includes('CordonStage') && upserts[0]!.includes('CordonWaitingFor'));
    });
  });

  test('a worker with CORDON_EVIDENCE_IN_TASK=false takes evidence in an activity of its own, and says so in the first marker', async () => {
    assert.equal(loadConfig({}).evidenceInTask, true);
    assert.equal(loadConfig({ CORDON_EVIDENCE_IN_TASK: 'false' }).evidenceInTask, false);
    assert.throws(() => loadConfig({ CORDON_EVIDENCE_IN_TASK: 'no' }), /CORDON_EVIDENCE_IN_TASK is true or false/);
    await scenario({ policy: policyWith([]), config: { evidenceInTask: false } }, async (sc) => {
      const state = await sc.until('evidence captured', (s) => captured(s) === 3);
      assert.ok(state.actions.filter((a) => a.action.startsWith('evidence:')).every((a) => a.outcome === 'done'));
      const events = (await sc.client.workflow.getHandle(sc.workflowId).fetchHistory()).events ?? [];
      assert.equal(localRuns(events, 'captureEvidenceSet').length, 0);
      assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'captureEvidenceSet').length, 1);
      assert.equal((localRuns(events, 'loadPolicyAndSuppress')[0]!.result as FirstStep).evidenceInTask, false);
      assert.equal((localRuns(events, 'loadPolicyAndSuppress')[0]!.result as FirstStep).evidence, undefined, 'and none in the first step');
    });
  });

  test('a first attempt that fails for now (the directory is down) is retried in its own local activity and lands once', async () => {
    const outage = (lab: LabProvider) => lab.dir.update((s) => void (s.unavailableUntil = new Date(Date.now() + 1500).toISOString()));
    await scenario({ policy: policyWith([]), prepare: outage }, async (sc) => {
      const state = await sc.until('suppressed', (s) => s.position === 'suppressed');
      const events = (await sc.client.workflow.getHandle(sc.workflowId).fetchHistory()).events ?? [];
      const attempts = (localRuns(events, 'loadPolicyAndSuppress')[0]!.result as FirstStep).attempts;
      assert.ok(attempts.every((x) => 'error' in x && x.retry && /unavailable/.test(x.error)), JSON.stringify(attempts));
      const retried = localRuns(events, 'suppress');
      assert.equal(retried.length, 3, 'each action in its own local activity');
      assert.ok(retried.every((r) => (r.result as SuppressionResult).changed));
      assert.deepEqual(state.actions.filter((a) => a.action.startsWith('suppress:')).map((a) => a.outcome), ['done', 'done', 'done']);
      assert.equal((await sc.mutations()).length, 3, 'each change made once');
    });
  });

  test("a first attempt that fails for good (no such identity) is the action's failure, with no retry", async () => {
    await scenario({ policy: policyWith([]), identity: null }, async (sc) => {
      const state = await sc.until('needs attention', (s) => s.status === 'needs-attention');
      const events = (await sc.client.workflow.getHandle(sc.workflowId).fetchHistory()).events ?? [];
      const attempts = (localRuns(events, 'loadPolicyAndSuppress')[0]!.result as FirstStep).attempts;
      assert.ok(attempts.every((x) => 'error' in x && !x.retry), JSON.stringify(attempts));
      assert.equal(localRuns(events, 'suppress').length, 0);
      assert.ok(state.actions.filter((a) => a.action.startsWith('suppress:')).every((a) => a.outcome === 'failed' && /does not exist/.test(a.detail)), JSON.stringify(state.actions));
    });
  });

  test('a first attempt still running after 5 s is handed to its own activity, and its late call is harmless', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-first-try-'));
    const file = join(dir, 'lab.json');
    const slow = new (class extends LabProvider {
      override async suppress(...args: Parameters<LabProvider['suppress']>) {
        await new Promise((r) => setTimeout(r, 5500));
        return super.suppress(...args);
      }
    })(file);
    const s = signal();
    await slow.dir.seed({ [s.identityId]: labIdentity() });
    const activities = testActivities(new Map([['lab', slow]]), dir);
    const t0 = performance.now();
    const step = await activities.loadPolicyAndSuppress(s, 'cordon/lab/first-try');
    const took = performance.now() - t0;
    assert.ok(took >= 4900, `handed over after ${took} ms, before the budget`);
    // Handed over while the calls were still running (they land 500 ms later), not when they ended.
    assert.equal((await slow.dir.read()).mutations.length, 0, 'handed over before any call landed');
    assert.equal(step.attempts.length, 3);
    assert.ok(step.attempts.every((x) => 'error' in x && x.retry && /no answer within 5000 ms/.test(x.error)), JSON.stringify(step.attempts));
    // The late calls land, as an activity's after a start-to-close timeout would; a retry then finds them in place.
    await eventually(async () => (await slow.dir.read()).mutations.length === 3, 'the late calls to land');
    const retry = testActivities(new Map([['lab', new LabProvider(file)]]), dir).suppress({ provider: 'lab', identityId: s.identityId, kind: s.identityKind }, 'revoke-sessions');
    assert.equal((await retry).changed, false);
  });

  test('an evidence failure is recorded and leaves suppression done', async () => {
    await scenario({ policy: policyWith(timedLadder('50ms')), identity: { faults: { evidenceFails: true } } }, async (sc) => {
      const state = await sc.until('contained', (s) => s.status === 'contained');
      const evidence = state.actions.filter((a) => a.action.startsWith('evidence:'));
      assert.equal(evidence.length, 3);
      assert.ok(evidence.every((a) => a.outcome === 'failed' && a.detail.includes('evidence capture')));
      assert.deepEqual(state.evidence.map((e) => e.kind), ['sessions'], 'only the sessions suppression ended');
      assert.ok(state.suppressedAt);
      assert.deepEqual((await sc.identity()).sessions, []);
    });
  });

  test('a suppression that cannot succeed ends in needs-attention, never contained', async () => {
    await scenario({ policy: policyWith(timedLadder('50ms')), identity: null }, async (sc) => {
      const state = await sc.until('needs-attention', (s) => s.status === 'needs-attention');
      assert.equal(state.position, 'new');
      assert.equal(state.suppressedAt, undefined);
      const failed = state.actions.filter((a) => a.action.startsWith('suppress:'));
      assert.equal(failed.length, 3);
      assert.ok(failed.every((a) => a.outcome === 'failed' && a.detail.includes('does not exist')), JSON.stringify(failed));
      assert.match(state.waiting!.detail, /suppression failed/);
      // An operator can close it; it never reaches "contained".
      await sc.command('abort', 'identity was deleted upstream');
      const closed = await sc.until('aborted', (s) => s.status === 'aborted');
      assert.equal(closed.position, 'new');
    });
  });
});

describe('policy', () => {
  test('a low-confidence signal steps up and watches; nothing is revoked', async () => {
    await scenario({ policy: DEFAULT_POLICY, signal: { confidence: 0.3, trigger: 'new-device' } }, async (sc) => {
      const state = await sc.until('watching', (s) => s.status === 'watching');
      assert.equal(state.plan.rule, 'low-confidence-watch');
      const identity = await sc.identity();
      assert.equal(identity.sessions.length, 2);
      assert.equal(identity.tokens.length, 2);
      assert.equal(identity.enabled, true);
      assert.deepEqual(identity.grants, ORIGINAL_GRANTS);
      assert.equal(identity.stepUpRequired, true);
      assert.deepEqual((await sc.mutations()).map((m) => m.op), ['force-step-up']);
    });
  });

  test('a dry run reports every step and changes nothing', async () => {
    await scenario({ policy: policyWith(timedLadder('50ms')), dryRun: true }, async (sc) => {
      assert.match(sc.workflowId, /^cordon-dryrun\//);
      const state = await sc.until('dry run to finish', (s) => s.status === 'contained');
      assert.equal(state.plan.dryRun, true);
      const steps = state.actions.map((a) => `${a.action}:${a.outcome}`);
      for (const step of ['suppress:revoke-sessions:would-do', 'evidence:grants:would-do', 'restrict:would-do', 'rotate:would-do', 'disable:would-do']) {
        assert.ok(steps.includes(step), `${step} missing from ${steps}`);
      }
      assert.match(state.actions.find((a) => a.action === 'restrict')!.detail, /would narrow grants \[orders:read, orders:write, payments:admin\] to \[orders:read\]/);
      assert.deepEqual(await sc.mutations(), []);
      assert.deepEqual(await sc.identity(), sc.seeded);
    });
  });
});

test('no secret value appears in any workflow history this file produced', async () => {
  const { client } = await testEnv();
  const { workflows, secrets } = await scanTouchedHistories(client);
  assert.ok(workflows >= 6 && secrets >= 2, `scanned ${workflows} histories for ${secrets} secrets`);
});
