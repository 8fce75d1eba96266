// Cordon on a production-shaped Temporal: the server on PostgreSQL (scripts/cluster-core.ts) with
// two worker processes, each with its own data folder as two hosts would have, sharing the vault
// and the evidence store through PostgreSQL, the vault key, the sealing key and the policy file.
// Work lands on both; a rotation retried on the other worker yields the same secret; evidence one
// worker wrote is read through the other; and a batch survives a worker kill -9, a server kill
// and restart and a PostgreSQL outage with nothing lost or applied twice.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { loadOrCreateSealKey, readSealPublicKey, sealKeyFiles } from '../activities/command-seal';
import { loadConfig } from '../activities/config';
import { LabDirectory } from '../activities/providers/lab';
import { Vault } from '../activities/secret-sink';
import { openStateStores, type StateStores } from '../activities/stores';
import { describeContainment, sendCommand, submitSignal } from '../client/containments';
import { DevIssuer } from '../client/dev-issuer';
import { auditCalls, CLUSTER_DRILL, runDrill } from '../scripts/drill-core';
import { startCluster, type Cluster } from '../scripts/cluster-core';
import { activityPlacement, WorkerProcess } from '../scripts/worker-process';
import { containmentWorkflowId } from '../workflows/ids';
import type { FirstStep } from '../workflows/contract';
import { ContainmentState, type EvidenceOutcome } from '../workflows/schemas';
import { eventually, labIdentity, policyWith, signal, timedLadder } from './fixtures';
import { inCI, stateDatabase } from './services';

// test/run.ts says why the cluster cannot run here (no Go and no cached server); without
// PostgreSQL there is no setup URL. A user's machine skips with the reason; CI never gets here.
const unavailable = process.env.CORDON_TEST_NO_TEMPORAL_SERVER ?? (process.env.CORDON_TEST_POSTGRES_SETUP_URL ? undefined : 'PostgreSQL is not installed');
const skip = unavailable && !inCI() ? `needs the Temporal server and PostgreSQL: ${unavailable}` : false;

const BATCH = 16;

/**
 * The evidence a step's run captured: v8's first step captures it beside suppression, and a
 * capture of its own takes what that step did not (a failed local attempt has no result: a later attempt follows).
 */
const evidenceOf = (r: { activity: string; result?: unknown }) =>
  r.activity === 'loadPolicyAndSuppress' ? ((r.result as FirstStep | undefined)?.evidence ?? []) : r.activity === 'captureEvidenceSet' ? ((r.result as EvidenceOutcome[] | undefined) ?? []) : [];
const STAGE_ONLY = ['restrictGrants'];
const ROLLBACK_ONLY = ['restoreGrants', 'liftSuppression'];

/**
 * A lead's token from the run's development issuer (test/run.ts serves it). Not through
 * test/harness.ts: that installs the SDK runtime in this process, and with no connection of its
 * own here, nothing would ever shut it down and the file would never exit.
 */
async function leadToken(username: string): Promise<string> {
  const dir = process.env.CORDON_TEST_ISSUER_DIR;
  const issuer = process.env.CORDON_OIDC_ISSUER;
  if (!dir || !issuer) throw new Error('no development issuer: run tests through `npm test` (test/run.ts starts one)');
  return (await DevIssuer.open(dir)).mint({ issuer, audience: process.env.CORDON_OIDC_AUDIENCE ?? 'cordon', username, roles: ['cordon-lead'] });
}

describe('two workers on the cluster', { timeout: 300_000, skip }, () => {
  let cluster: Cluster;
  let client: Client;
  let dir: string;
  let lab: LabDirectory;
  let workers: WorkerProcess[];
  const envOf = new Map<WorkerProcess, NodeJS.ProcessEnv>();
  const taskQueue = 'cordon-cluster-test';
  const stores = (w: WorkerProcess): StateStores => openStateStores(loadConfig(envOf.get(w)));

  before(async () => {
    cluster = await startCluster({});
    dir = mkdtempSync(join(tmpdir(), 'cordon-cluster-test-'));
    lab = new LabDirectory(join(dir, 'lab', 'directory.json'));
    // What an operator hands every host: one policy, one vault key, one sealing key, one state store.
    const policyFile = join(dir, 'policy.json');
    writeFileSync(policyFile, JSON.stringify(policyWith(timedLadder('1s'), { retainFor: '10m' })));
    await loadOrCreateSealKey(join(dir, 'shared'));
    const shared = {
      CORDON_STATE_URL: await stateDatabase(),
      CORDON_VAULT_KEY: randomBytes(32).toString('base64'),
      CORDON_SEAL_KEY_FILE: sealKeyFiles(join(dir, 'shared')).privateFile,
      CORDON_POLICY: policyFile,
      CORDON_LAB_FILE: lab.file,
      CORDON_OIDC_ISSUER: process.env.CORDON_OIDC_ISSUER!,
      CORDON_OIDC_AUDIENCE: process.env.CORDON_OIDC_AUDIENCE ?? 'cordon',
    };
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k)));
    workers = ['worker-a', 'worker-b'].map((name) => {
      const env = { ...base, ...shared, TEMPORAL_ADDRESS: cluster.address, TEMPORAL_NAMESPACE: cluster.namespace, CORDON_DATA_DIR: join(dir, name), CORDON_TASK_QUEUE: taskQueue, CORDON_METRICS_PORT: '0' };
      const w = new WorkerProcess(env, join(dir, `${name}.log`), () => undefined, name);
      envOf.set(w, env);
      return w;
    });
    await Promise.all(workers.map((w) => w.start()));
    client = new Client({ connection: await Connection.connect({ address: cluster.address }), namespace: cluster.namespace });
  });

  after(async () => {
    await Promise.all((workers ?? []).map((w) => w.stop()));
    await client?.connection.close();
    await cluster?.stop();
  });

  test('one batch shared by two workers: suppression, stages and rollback land on both, evidence is read through the other, nothing lost or applied twice', async () => {
    const ids = Array.from({ length: BATCH }, (_, i) => `cl-batch-${String(i).padStart(2, '0')}`);
    const workflowIds = ids.map((identityId) => containmentWorkflowId({ provider: 'lab', identityId }));
    await lab.seed(Object.fromEntries(ids.map((id) => [id, labIdentity()])));
    const runIds = await Promise.all(ids.map(async (identityId) => (await submitSignal(client, signal({ identityId }), { taskQueue })).runId));
    const where = (q: string) => `TaskQueue = "${taskQueue}" AND CordonIdentity STARTS_WITH "cl-batch-" AND ${q}`;
    await eventually(async () => (await client.workflow.count(where('CordonStage = "disabled"'))).count === BATCH, 'every containment to reach disabled', 90_000);

    // A lead rolls every one back; each rollback runs on whichever worker holds that containment.
    const token = await leadToken('lead-on-call');
    const sealKey = readSealPublicKey(join(dir, 'shared'));
    await Promise.all(workflowIds.map((id) => sendCommand(client, id, { type: 'rollback', reason: 'false positive (cluster test)' }, { token, sealKey })));
    const finals = await Promise.all(workflowIds.map(async (id) => ContainmentState.parse(await client.workflow.getHandle(id).result())));
    for (const f of finals) assert.equal(f.status, 'rolled-back', `${f.target.identityId} ended ${f.status}`);

    const { runs, byWorker } = await activityPlacement(client, workflowIds, workers);
    assert.deepEqual(Object.keys(byWorker).sort(), ['worker-a', 'worker-b'], `activities ran on ${JSON.stringify(byWorker)}`);
    for (const name of ['worker-a', 'worker-b']) {
      const ran = byWorker[name]!;
      // v6: a containment's first step suppresses; an action has a step of its own only when that attempt failed.
      assert.ok((ran.loadPolicyAndSuppress ?? 0) + (ran.suppress ?? 0) > 0, `${name} ran no suppression: ${JSON.stringify(byWorker)}`);
      assert.ok(STAGE_ONLY.some((a) => ran[a]! > 0), `${name} ran no stage: ${JSON.stringify(byWorker)}`);
      assert.ok(ROLLBACK_ONLY.some((a) => ran[a]! > 0), `${name} ran no rollback step: ${JSON.stringify(byWorker)}`);
    }

    // Every evidence artifact and every minted secret, read through the worker that did not write it.
    const opened = new Map(workers.map((w) => [w.name, stores(w)]));
    const otherThan = (name: string) => opened.get(name === 'worker-a' ? 'worker-b' : 'worker-a')!;
    let evidenceRead = 0;
    let secretsRead = 0;
    try {
      for (const r of runs) {
        for (const { ref } of evidenceOf(r)) {
          assert.ok(ref, `${r.workflowId}: every kind of evidence captured`);
          const stored = await otherThan(r.worker).evidence.read(ref.sha256);
          assert.equal(stored.containmentId, r.workflowId);
          assert.equal(stored.kind, ref.kind);
          evidenceRead++;
        }
        if (r.activity === 'rotateCredential') {
          const ref = r.result as { ref: string; fingerprint: string };
          const { secret } = await otherThan(r.worker).secrets.read(ref.ref);
          assert.equal(createHash('sha256').update(secret).digest('hex').slice(0, 12), ref.fingerprint);
          secretsRead++;
        }
      }
      // Rollback's re-issue is the credential now in force.
      for (const [i, id] of ids.entries()) {
        const { secret } = await opened.get('worker-a')!.secrets.read(Vault.refFor(`${workflowIds[i]}/${runIds[i]}/reissue`));
        assert.equal((await lab.read()).identities[id]!.credential?.sha256, LabDirectory.hashSecret(secret), `${id}'s credential is the vault's`);
      }
    } finally {
      await Promise.all([...opened.values()].map((s) => s.close()));
    }
    assert.equal(evidenceRead, 3 * BATCH);
    assert.equal(secretsRead, 2 * BATCH, 'the ladder\'s rotation and rollback\'s re-issue');
    assert.ok(new Set(runs.filter((r) => evidenceOf(r).length).map((r) => r.worker)).size === 2, 'both workers wrote evidence');
    for (const w of workers) {
      for (const sub of ['evidence', 'vault']) {
        const files = (() => {
          try {
            return readdirSync(join(envOf.get(w)!.CORDON_DATA_DIR!, sub), { recursive: true });
          } catch {
            return [];
          }
        })();
        assert.deepEqual(files, [], `${w.name}'s ${sub} folder: with a shared state store nothing is kept on the host`);
      }
    }

    // Nothing lost, nothing applied twice: one run per identity, each mutation once.
    assert.equal((await client.workflow.count(`TaskQueue = "${taskQueue}" AND CordonIdentity STARTS_WITH "cl-batch-"`)).count, BATCH);
    const state = await lab.read();
    const expected = ['revoke-sessions', 'revoke-tokens', 'block-high-risk-apis', 'restrict', 'rotate', 'disable', 'enable', 'restore', 'lift:block-high-risk-apis'].sort();
    for (const id of ids) {
      const ops = state.mutations.filter((m) => m.identity === id).map((m) => m.op);
      // Rotate twice: the ladder's rotation, then rollback's re-issue (a rotated secret cannot be un-rotated).
      assert.deepEqual(ops.filter((op) => op !== 'rotate').sort(), expected.filter((op) => op !== 'rotate'), `${id}: ${ops.join(', ')}`);
      assert.equal(ops.filter((op) => op === 'rotate').length, 2, `${id} rotations: ${ops.join(', ')}`);
    }
    // Every call, no-op or not: no step asked twice (no fault happened here to explain a retry).
    const calls = state.calls.filter((c) => ids.includes(c.identity));
    assert.deepEqual(auditCalls(calls.filter((c) => c.op !== 'rotate'), []), []);
    for (const id of ids) {
      const rotations = calls.filter((c) => c.identity === id && c.op === 'rotate');
      assert.equal(new Set(rotations.map((c) => c.activityId)).size, rotations.length, `${id}: a rotation activity called twice`);
      assert.equal(rotations.length, 2);
    }
  });

  test('a rotation cut off by a kill -9 is retried on the other worker and yields the same secret', async () => {
    const identityId = 'cl-rotate';
    // The lab holds the rotation after the secret is minted: the worker is killed right there.
    await lab.seed({ [identityId]: labIdentity({ faults: { rotateDelayMs: 600_000 } }) });
    const { workflowId, runId } = await submitSignal(client, signal({ identityId }), { taskQueue });
    // The rotation is a local activity inside a workflow task: the lab says which worker holds it.
    const held = await eventually(async () => (await lab.read()).held.find((h) => h.identity === identityId && h.op === 'rotate'), 'the rotation to start on a worker', 30_000);
    const holder = workers.find((w) => w.pids.some((pid) => held.worker.startsWith(`${pid}@`)))!;
    const other = workers.find((w) => w !== holder)!;
    assert.ok(holder, `the rotation runs on ${held.worker}, not one of this test's workers`);
    const ref = Vault.refFor(`${workflowId}/${runId}/rotate`);
    const reader = stores(other);
    try {
      const minted = await eventually(() => reader.secrets.read(ref).catch(() => undefined), 'the first attempt to mint the secret');
      await holder.kill();
      await lab.update((s) => void (s.identities[identityId]!.faults = {}));
      // The server notices the silence at the workflow task's timeout (10 s) and hands the task,
      // local activities and all, to the only worker polling: `other` runs the rotation again.
      const rotated = await eventually(async () => {
        const st = await describeContainment(client, workflowId);
        return st.receipts.rotated && st;
      }, 'the retried rotation', 90_000);
      assert.equal(rotated.receipts.rotated!.ref, ref);
      assert.equal(rotated.receipts.rotated!.fingerprint, createHash('sha256').update(minted.secret).digest('hex').slice(0, 12));
      assert.equal((await reader.secrets.read(ref)).secret, minted.secret, 'the vault still holds the first attempt\'s secret');
      const state = await lab.read();
      assert.equal(state.identities[identityId]!.credential?.sha256, LabDirectory.hashSecret(minted.secret), 'the directory took the first attempt\'s secret');
      const calls = state.calls.filter((c) => c.identity === identityId && c.op === 'rotate');
      assert.equal(calls.length, 1, 'the killed attempt never reached the directory; the retry did, once');
      assert.ok(other.pids.some((pid) => calls[0]!.worker?.startsWith(`${pid}@`)), `the call came from ${calls[0]!.worker}, not the surviving worker`);
      const { runs } = await activityPlacement(client, [workflowId], workers);
      assert.deepEqual(runs.filter((r) => r.activity === 'rotateCredential').map((r) => r.worker), [other.name]);
    } finally {
      await reader.close();
    }
    await holder.start(); // the host comes back and rejoins
  });
});

test('a batch on the cluster survives a worker kill -9, a server kill and restart and a PostgreSQL outage', { timeout: 300_000, skip }, async (t) => {
  const seed = Number(process.env.CORDON_DRILL_SEED ?? 11);
  const r = await runDrill({ ...CLUSTER_DRILL, seed, onEvent: (text) => t.diagnostic(text) });
  const where = `(seed ${r.seed}; CORDON_DRILL_SEED=${r.seed} replays the fault plan; logs kept in ${r.dataDir})`;
  assert.deepEqual(r.lost, [], `${r.lost.length} of ${r.containments} containments lost ${where}`);
  assert.deepEqual(r.duplicates, [], `mutations applied more than once ${where}`);
  assert.deepEqual(r.unexpected, [], `mutations no step asked for ${where}`);
  assert.deepEqual(r.leaks, [], `rotated secrets outside the vault ${where}`);
  assert.equal(r.secretsScanned, CLUSTER_DRILL.containments, 'every containment rotated one secret into the shared vault, and the scan looked for each');
  assert.deepEqual(r.finalStates, { 'completed contained disabled': CLUSTER_DRILL.containments });
  // The faults really happened, and both workers did the work.
  assert.equal(r.workerKills, CLUSTER_DRILL.workerKills);
  assert.equal(r.serverRestarts, CLUSTER_DRILL.serverRestarts);
  assert.equal(r.databaseOutages, CLUSTER_DRILL.databaseOutages);
  assert.ok(r.databaseDownSeconds >= CLUSTER_DRILL.databaseOutageMs! / 1000, `the database was down ${r.databaseDownSeconds} s`);
  assert.deepEqual(Object.keys(r.byWorker).sort(), ['worker-a', 'worker-b'], JSON.stringify(r.byWorker));
  t.diagnostic(
    `${r.containments} containments on 2 workers (${Object.entries(r.byWorker).map(([w, by]) => `${w} ran ${Object.values(by).reduce((a, b) => a + b, 0)} activities`).join(', ')}), ` +
      `${r.workerKills} worker kills, ${r.serverRestarts} server restart, ${r.databaseDownSeconds.toFixed(1)} s without PostgreSQL, ${r.outageSeconds.toFixed(1)} s lab outage, ` +
      `${r.retriedActivities} activities retried, ${r.durationSeconds.toFixed(1)} s`,
  );
});
