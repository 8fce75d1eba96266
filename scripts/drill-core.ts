// The fault drill, shared by `npm run drill`, test/drill.test.ts and test/cluster.test.ts. A batch
// of containments runs on a private Temporal (the dev server on a SQLite file, or the cluster: the
// server on PostgreSQL) and one or more workers in their own processes, while a worker is killed
// with SIGKILL and restarted, the server is killed and restarted on the same database and port,
// the cluster's PostgreSQL goes away for a few seconds, and the lab provider answers nothing for a
// while. Several workers share the vault and the evidence store through PostgreSQL, the sealing
// key and the policy file, as hosts would. Afterwards every containment must have closed where its
// plan ends, and the lab's journal must show every mutation exactly once.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadOrCreateSealKey, sealKeyFiles } from '../activities/command-seal';
import { LabDirectory, type Call, type LabIdentity } from '../activities/providers/lab';
import { loadConfig } from '../activities/config';
import { openStateStores } from '../activities/stores';
import { CordonInputError, submitSignal } from '../client/containments';
import { containmentWorkflowId } from '../workflows/ids';
import { ContainmentState } from '../workflows/schemas';
import { labIdentity, policyWith, prng, signal, timedLadder } from '../test/fixtures';
import { startCluster, type Cluster } from './cluster-core';
import { startDevServer, type DevServer } from './dev-server';
import { createStateDatabase, startPostgres, type LocalService } from './local-services';
import { mapLimit, sleep } from './measure';
import { findSecret } from './secret-scan';
import { resolveTemporalCli } from './temporal-cli';
import { activityPlacement, killGroup, localActivity, WorkerProcess } from './worker-process';

export interface DrillOptions {
  containments: number;
  /** Signals arrive evenly over this window, and the faults fall inside it. */
  spreadMs: number;
  workerKills: number;
  serverRestarts: number;
  /** How long the lab answers nothing while a worker runs (0: no outage); starts at a worker kill. */
  outageMs: number;
  /** The timer gate before each stage, and how long a finished containment stays open. */
  stageAfter: string;
  retainFor: string;
  /**
   * Evidence beside suppression. Short drills leave it out: a capture in flight on a killed worker
   * is retried only after its 2-minute start-to-close timeout, which would set the drill's length.
   */
  evidence: boolean;
  /** After the last signal and fault, how long the containments get to close. */
  settleMs: number;
  /** The dev server (SQLite) or the cluster (the Temporal server on PostgreSQL). */
  engine?: 'dev' | 'cluster';
  /** Worker processes, each with its own data folder; more than one share state through PostgreSQL. */
  workers?: number;
  /** Cluster only: times the server's PostgreSQL stops, and for how long. */
  databaseOutages?: number;
  databaseOutageMs?: number;
  seed: number;
  onEvent?: (text: string) => void;
  onProgress?: (done: number, total: number, detail: string) => void;
}

export const DEFAULT_DRILL: DrillOptions = {
  containments: 200,
  spreadMs: 75_000,
  workerKills: 4,
  serverRestarts: 1,
  outageMs: 30_000,
  stageAfter: '1s',
  retainFor: '2s',
  evidence: true,
  settleMs: 300_000,
  seed: 1,
};

export const SMALL_DRILL: DrillOptions = { ...DEFAULT_DRILL, containments: 24, spreadMs: 20_000, workerKills: 2, outageMs: 6_000, evidence: false, settleMs: 100_000 };

/** The cluster test's drill: two workers, each fault once or twice, the server's database gone for 5 s. */
export const CLUSTER_DRILL: DrillOptions = { ...SMALL_DRILL, engine: 'cluster', workers: 2, containments: 30, spreadMs: 25_000, workerKills: 2, serverRestarts: 1, databaseOutages: 1, databaseOutageMs: 5_000 };

export interface DrillReport {
  seed: number;
  containments: number;
  workerKills: number;
  /** Worker exits nobody asked for; each was restarted. */
  workerCrashes: number;
  serverRestarts: number;
  engine: 'dev' | 'cluster';
  workers: number;
  databaseOutages: number;
  /** How long the server's PostgreSQL was down in all. */
  databaseDownSeconds: number;
  /** Worker name → activity type → activities whose final attempt it ran. */
  byWorker: Record<string, Record<string, number>>;
  /** Activities that succeeded only on a later attempt, by the worker that ran it. */
  retriedActivities: number;
  /** How long the lab was down while a worker was running. */
  outageSeconds: number;
  /** How long the lab was down in all, counting the worker's restart. */
  labDownSeconds: number;
  submitRetries: number;
  /** "<execution status> <containment status> <position>" → how many containments ended so. */
  finalStates: Record<string, number>;
  /**
   * An (identity, op) mutation applied more than once, a mutating call repeated beyond what a
   * retry after a fault explains (see auditCalls), or more runs than identities.
   */
  duplicates: string[];
  /** Calls by a retried attempt that found the change in place: each explained by a fault (auditCalls). */
  retriedCalls: number;
  /** Containments not accounted for (not closed where the plan ends, or a mutation never applied), with why. */
  lost: string[];
  /** A mutation no plan step asked for (a rollback, a re-enable). */
  unexpected: string[];
  /** Where a rotated secret from the vault appears: the worker's log, an evidence file. */
  leaks: string[];
  /** How many secrets the leak scan looked for. */
  secretsScanned: number;
  durationSeconds: number;
  /** Server database, lab file and worker log; kept when the drill found a problem. */
  dataDir: string;
}

const EXPECTED_STAGES = ['restrict', 'rotate', 'disable'];

/** What a contained lab identity looks like after the whole timed ladder; undefined when it does. */
function notContained(i: LabIdentity | undefined): string | undefined {
  if (!i) return 'identity missing from the lab';
  const wrong = [
    i.enabled && 'still enabled',
    (i.grants.length !== 1 || i.grants[0] !== 'orders:read') && `grants [${i.grants.join(', ')}]`,
    i.sessions.length && `${i.sessions.length} session(s) left`,
    i.tokens.length && `${i.tokens.length} token(s) left`,
    !i.highRiskApisBlocked && 'high-risk APIs not blocked',
    i.credential?.id === 'cred-original' && 'credential not rotated',
  ].filter(Boolean);
  return wrong.length ? wrong.join(', ') : undefined;
}

/** v6's first step, which makes suppressions' first attempts (see auditCalls). */
const FIRST_STEP = 'loadPolicyAndSuppress';

/**
 * Which mutating calls in the lab's journal are duplicates. The journal records every call, the
 * ones that changed nothing too, with the activity attempt that made it. For each identity and
 * op (one containment per identity in the drill):
 * - one activity may ask for it. A second activity (another activity id or run) means the
 *   workflow ran the step again: a duplicate even when the second call changed nothing.
 * - Within that activity, a later call must come from a later attempt, and a fault (a worker
 *   killed or dead, or the server killed) must fall between the two calls. That is the retry a
 *   kill explains: the first attempt applied the change and died, or its report was lost with
 *   the server, and the retry found the change in place. A later attempt with no fault between
 *   is a retry nothing in the drill explains; the same attempt calling twice is the activity
 *   repeating itself. Both are duplicates. A local activity (v4's provider calls) that a worker
 *   ran and then died before its workflow task completed is run again from attempt 1 by the
 *   next worker: for it, the same attempt again is explained by a fault between, as a retry is.
 * - v6: a suppression's first attempt is made by the containment's first step, and the action
 *   has an activity of its own only when that attempt failed or ran past its budget. So the
 *   first step and the action's own activity may both ask for it, the two being judged as one:
 *   at most one of their calls changes something, and when the first step asks after the
 *   other (it ran again because a fault lost the task that recorded both), a fault falls between.
 * - A local activity's id is its sequence number in the run, and a retry that backs off on a
 *   server timer takes the next one. So when a task is run again after a fault and a local
 *   activity before the step now needs such a retry (the lab still down), the step asks under a
 *   later id. `recorded` (run id/activity id → type, from the histories' markers) tells the two
 *   apart: an execution the history does not record under its id and type died with its task,
 *   and is judged with the recorded execution of the same type in its run as one activity.
 *   Two recorded executions are the workflow asking twice.
 * Calls made outside an activity (seeding, tests) are not judged. `faults` are epoch ms; a
 * fault up to `slackMs` before the earlier call still counts (it is timed just before the kill).
 */
export function auditCalls(calls: readonly Call[], faults: readonly number[], recorded: ReadonlyMap<string, string> = new Map(), slackMs = 1000): string[] {
  const found: string[] = [];
  const groups = new Map<string, Call[]>();
  for (const c of calls) {
    if (c.activityId === undefined) continue;
    const key = `${c.identity}\u0000${c.op}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  for (const list of groups.values()) {
    const { identity, op } = list[0]!;
    const executions = new Map<string, Call[]>();
    for (const c of list) {
      const key = `${c.runId}/${c.activityId}`;
      executions.set(key, [...(executions.get(key) ?? []), c]);
    }
    for (const [key, own] of executions) {
      const { runId, activityType, local } = own[0]!;
      if (!local || recorded.get(key) === activityType) continue;
      const redone = [...executions.keys()].find((k) => k !== key && k.startsWith(`${runId}/`) && recorded.get(k) === activityType);
      if (redone === undefined) continue;
      executions.set(redone, [...own, ...executions.get(redone)!]);
      executions.delete(key);
    }
    const [firstStep, own] = [...executions.values()].sort((a, b) => (a[0]!.activityType === FIRST_STEP ? -1 : b[0]!.activityType === FIRST_STEP ? 1 : 0));
    if (executions.size === 2 && firstStep![0]!.activityType === FIRST_STEP && own![0]!.activityType !== FIRST_STEP) {
      const changed = list.filter((c) => c.changed);
      const [lastOwn, firstAgain] = [Math.max(...own!.map((c) => Date.parse(c.at))), Math.min(...firstStep!.map((c) => Date.parse(c.at)))];
      if (changed.length > 1) found.push(`${identity}: ${op} applied by both the first step and its own activity (${changed.map((c) => c.at).join(', ')})`);
      else if (firstAgain > lastOwn && !faults.some((f) => f >= lastOwn - slackMs && f <= firstAgain)) {
        found.push(`${identity}: ${op}: the first step asked for it again at ${new Date(firstAgain).toISOString()}, after its own activity, with no fault between`);
      } else found.push(...auditCalls(firstStep!, faults, recorded, slackMs), ...auditCalls(own!, faults, recorded, slackMs));
      continue;
    }
    if (executions.size > 1) {
      found.push(`${identity}: ${op} requested by ${executions.size} activities (${[...executions.keys()].join(', ')}), ${list.filter((c) => c.changed).length} of the calls changing something`);
      continue;
    }
    const byOrder = [...list].sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < byOrder.length; i++) {
      const prev = byOrder[i - 1]!;
      const cur = byOrder[i]!;
      const [from, to] = [Date.parse(prev.at), Date.parse(cur.at)];
      const faultBetween = faults.some((f) => f >= from - slackMs && f <= to);
      if (cur.local && (cur.attempt ?? 1) <= (prev.attempt ?? 1) && faultBetween) continue;
      if ((cur.attempt ?? 1) <= (prev.attempt ?? 1)) {
        found.push(`${identity}: ${op}: attempt ${cur.attempt} of activity ${cur.activityId} applied it twice (${prev.at}, ${cur.at})`);
      } else if (!faultBetween) {
        found.push(`${identity}: ${op} repeated by attempt ${cur.attempt} at ${cur.at} (after attempt ${prev.attempt} at ${prev.at}) with no worker kill or server restart between`);
      }
    }
  }
  return found.sort();
}

/** Each local activity the runs' histories record: `<run id>/<activity id>` → its type (see auditCalls). */
async function recordedLocalActivities(client: Client, calls: readonly Call[]): Promise<Map<string, string>> {
  const runs = new Map(calls.filter((c) => c.runId && c.workflowId).map((c) => [c.runId!, c.workflowId!]));
  const recorded = new Map<string, string>();
  await mapLimit([...runs], 8, async ([runId, workflowId]) => {
    for (const e of (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? []) {
      const local = localActivity(e);
      if (local) recorded.set(`${runId}/${local.activityId}`, local.activity);
    }
  });
  return recorded;
}

/** The Temporal the drill runs on, which it can kill and start again on the same data and port. */
interface Engine {
  address: string;
  label: string;
  kill(): Promise<void>;
  /** Starts it again; resolves with how long that took, once it serves. */
  restart(): Promise<number>;
  /** Cluster only. */
  database?: LocalService;
  stop(): Promise<void>;
  killNow(): void;
}

async function startEngine(kind: 'dev' | 'cluster', dataDir: string, say: (t: string) => void): Promise<Engine> {
  if (kind === 'cluster') {
    const cluster: Cluster = await startCluster({ dir: join(dataDir, 'cluster'), onEvent: (t) => say(`cluster: ${t}`) });
    return {
      address: cluster.address,
      label: 'Temporal server',
      kill: () => cluster.killServer('SIGKILL'),
      restart: () => cluster.restartServer(),
      database: cluster.postgres,
      stop: () => cluster.stop(),
      killNow: () => undefined, // startCluster kills its server when this process exits
    };
  }
  const cli = await resolveTemporalCli();
  if (!cli.path) throw new Error('the drill needs a local temporal CLI (see README: Requirements)');
  const dbFile = join(dataDir, 'temporal.db');
  let server: DevServer = await startDevServer({ cli: cli.path, dbFile, headless: true, detached: true });
  const port = Number(server.address.split(':')[1]);
  return {
    address: server.address,
    label: 'dev server',
    kill: () => server.stop('SIGKILL'),
    restart: async () => {
      server = await startDevServer({ cli: cli.path!, dbFile, port, headless: true, detached: true });
      return server.startedInMs;
    },
    stop: () => server.stop(),
    killNow: () => killGroup(server.process),
  };
}

type Fault = 'worker' | 'server' | 'database';

export async function runDrill(o: DrillOptions): Promise<DrillReport> {
  const t0 = Date.now();
  const rand = prng(o.seed);
  const say = o.onEvent ?? (() => undefined);
  const engineKind = o.engine ?? 'dev';
  const workerCount = Math.max(1, o.workers ?? 1);
  const databaseOutages = engineKind === 'cluster' ? (o.databaseOutages ?? 0) : 0;
  if ((o.databaseOutages ?? 0) > 0 && engineKind !== 'cluster') throw new Error('database outages need the cluster engine (the dev server keeps its SQLite file in-process)');
  // The fault plan: kills, restarts and outages in a seeded order; the lab outage starts at a worker kill.
  const faults: Fault[] = [...Array<Fault>(o.workerKills).fill('worker'), ...Array<Fault>(o.serverRestarts).fill('server'), ...Array<Fault>(databaseOutages).fill('database')]
    .map((f) => ({ f, key: rand() }))
    .sort((a, b) => a.key - b.key)
    .map((x) => x.f);
  const workerFaults = faults.flatMap((f, i) => (f === 'worker' ? [i] : []));
  const outageAt = o.outageMs > 0 ? workerFaults[Math.floor(rand() * workerFaults.length)] : undefined;
  if (o.outageMs > 0 && outageAt === undefined) throw new Error('a lab outage starts at a worker kill: ask for at least one');
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-drill-'));
  const labFile = join(dataDir, 'lab', 'directory.json');
  const taskQueue = 'cordon-drill';
  const lab = new LabDirectory(labFile);
  const policy = policyWith(timedLadder(o.stageAfter), { retainFor: o.retainFor, ...(o.evidence ? {} : { evidence: [] }) });
  // The workers approve the drill's policy from one file, as an operator configures it.
  const policyFile = join(dataDir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(policy));
  const ids = Array.from({ length: o.containments }, (_, i) => `drill-${String(i).padStart(4, '0')}`);
  const workflowIds = ids.map((identityId) => containmentWorkflowId({ provider: 'lab', identityId }));

  const engine = await startEngine(engineKind, dataDir, say);
  // Several workers, as several hosts: their own data folders, one shared state store (its own
  // PostgreSQL, so that the server's database outage is the server's alone), one vault key and
  // one sealing key. The worker sees only the drill's settings, never the caller's.
  let stateDb: LocalService | undefined;
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k)));
  let shared: Record<string, string> = {};
  if (workerCount > 1) {
    stateDb = await startPostgres();
    const keys = join(dataDir, 'shared'); // what an operator hands every host
    await loadOrCreateSealKey(keys);
    shared = { CORDON_STATE_URL: await createStateDatabase(stateDb.setupUrl), CORDON_VAULT_KEY: randomBytes(32).toString('base64'), CORDON_SEAL_KEY_FILE: sealKeyFiles(keys).privateFile };
  }
  const workers = Array.from({ length: workerCount }, (_, n) => {
    const name = workerCount > 1 ? `worker-${String.fromCharCode(97 + n)}` : 'worker';
    const own = workerCount > 1 ? join(dataDir, name) : dataDir;
    return new WorkerProcess(
      { ...base, ...shared, TEMPORAL_ADDRESS: engine.address, TEMPORAL_NAMESPACE: 'default', CORDON_DATA_DIR: own, CORDON_LAB_FILE: labFile, CORDON_TASK_QUEUE: taskQueue, CORDON_METRICS_PORT: '0', CORDON_POLICY: policyFile },
      join(dataDir, `${name}.log`),
      say,
      name,
    );
  });
  const killAll = () => {
    for (const w of workers) w.killNow();
    engine.killNow();
  };
  process.on('exit', killAll);
  const connection = await Connection.connect({ address: engine.address });
  const client = new Client({ connection });
  const report: DrillReport = {
    seed: o.seed,
    containments: o.containments,
    engine: engineKind,
    workers: workerCount,
    workerKills: 0,
    workerCrashes: 0,
    serverRestarts: 0,
    databaseOutages: 0,
    databaseDownSeconds: 0,
    outageSeconds: 0,
    labDownSeconds: 0,
    submitRetries: 0,
    finalStates: {},
    byWorker: {},
    retriedActivities: 0,
    duplicates: [],
    retriedCalls: 0,
    leaks: [],
    secretsScanned: 0,
    lost: [],
    unexpected: [],
    durationSeconds: 0,
    dataDir,
  };
  let submitted = 0;
  let verified = false;
  /** Server kills and database outages, for the call audit: what explains a retried call. */
  const engineFaults: number[] = [];
  const count = async (query: string) => (await client.workflow.count(`TaskQueue = "${taskQueue}" AND ${query}`)).count;
  const ticker = setInterval(() => {
    count("ExecutionStatus != 'Running'").then(
      (closed) => o.onProgress?.(closed, o.containments, `containments closed; ${submitted} signals sent, ${report.workerKills} worker kills, ${report.serverRestarts} server restarts, ${report.databaseOutages} database outages`),
      () => undefined, // the server is down: the next tick tells
    );
  }, 1000);

  try {
    await lab.seed(Object.fromEntries(ids.map((id) => [id, labIdentity()])));
    // The slowest start-up so far (bundling the workflows): an outage must outlast a restart.
    let startupMs = 0;
    const startWorker = async (w: WorkerProcess) => {
      const t = Date.now();
      const ready = await w.start();
      startupMs = Math.max(startupMs, ready - t);
      return ready;
    };
    await Promise.all(workers.map(startWorker));
    say(`${workerCount > 1 ? `${workerCount} workers` : 'worker'} up in ${startupMs} ms on the ${engine.label} at ${engine.address}; ${o.containments} signals over ${o.spreadMs / 1000} s`);
    const origin = Date.now();
    const at = (ms: number) => `t+${((ms - origin) / 1000).toFixed(1)}s`;

    const submissions = Promise.all(ids.map(async (identityId, i) => {
      await sleep(origin + (o.spreadMs * i) / ids.length - Date.now());
      // The same signal id every attempt: a retry after an unseen success is a duplicate, a no-op.
      const s = signal({ identityId, signalId: `drill-signal-${i}` });
      for (const deadline = Date.now() + 120_000; ; ) {
        try {
          await submitSignal(client, s, { taskQueue });
          submitted++;
          return;
        } catch (err) {
          if (err instanceof CordonInputError || Date.now() > deadline) throw err;
          report.submitRetries++;
          await sleep(500);
        }
      }
    }));
    submissions.catch(() => undefined); // awaited below; a failure must not count as unhandled meanwhile

    for (const [i, f] of faults.entries()) {
      await sleep(origin + (o.spreadMs * (i + 0.25 + 0.5 * rand())) / faults.length - Date.now());
      const pause = 200 + rand() * 1800;
      if (f === 'server') {
        say(`${at(Date.now())} ${engine.label} killed (SIGKILL)`);
        engineFaults.push(Date.now());
        await engine.kill();
        await sleep(pause);
        const ms = await engine.restart();
        report.serverRestarts++;
        say(`${at(Date.now())} ${engine.label} back on ${engine.address} after ${ms} ms`);
        continue;
      }
      if (f === 'database') {
        const down = Date.now();
        engineFaults.push(down);
        await engine.database!.halt();
        say(`${at(Date.now())} the server's PostgreSQL stopped`);
        await sleep(o.databaseOutageMs ?? 5000);
        await engine.database!.resume();
        report.databaseOutages++;
        report.databaseDownSeconds += (Date.now() - down) / 1000;
        say(`${at(Date.now())} the server's PostgreSQL back after ${((Date.now() - down) / 1000).toFixed(1)} s`);
        continue;
      }
      const victim = workers[Math.floor(rand() * workers.length)]!;
      await victim.kill();
      report.workerKills++;
      say(`${at(Date.now())} ${victim.name} killed (SIGKILL)`);
      let unavailableUntil = 0;
      if (i === outageAt) {
        // With one worker it lasts outageMs past a slow restart, so a running worker meets all of
        // it; with several, the others run through the whole of it.
        const down = Date.now();
        unavailableUntil = down + (workerCount > 1 ? o.outageMs : pause + 1.5 * startupMs + o.outageMs);
        await lab.update((s) => void (s.unavailableUntil = new Date(unavailableUntil).toISOString()));
        report.labDownSeconds = (unavailableUntil - down) / 1000;
        if (workerCount > 1) report.outageSeconds = o.outageMs / 1000;
      }
      await sleep(pause);
      const ready = await startWorker(victim);
      if (unavailableUntil && workerCount === 1) {
        report.outageSeconds = Math.max(0, (unavailableUntil - ready) / 1000);
        say(`${at(ready)} worker back; the lab is down until ${at(unavailableUntil)} (${report.outageSeconds.toFixed(1)} s with a worker running)`);
      } else {
        say(`${at(ready)} ${victim.name} back${unavailableUntil ? `; the lab is down until ${at(unavailableUntil)}` : ''}`);
      }
    }
    await submissions;
    say(`${at(Date.now())} all ${submitted} signals accepted (${report.submitRetries} retries); waiting for the containments to close`);

    const deadline = Date.now() + o.settleMs;
    while (Date.now() < deadline && (await count("ExecutionStatus = 'Running'").catch(() => 1)) > 0) await sleep(1000);
    clearInterval(ticker);

    // Strongly consistent checks: each execution, its result, and the lab's journal.
    const state = await lab.read();
    const journal = new Map<string, Map<string, number>>();
    for (const m of state.mutations) {
      const ops = journal.get(m.identity) ?? new Map<string, number>();
      journal.set(m.identity, ops.set(m.op, (ops.get(m.op) ?? 0) + 1));
    }
    const expected = [...policy.rules[0]!.suppress, ...EXPECTED_STAGES];
    await mapLimit(ids, 8, async (id, i) => {
      const handle = client.workflow.getHandle(workflowIds[i]!);
      const problems: string[] = [];
      let final: string;
      try {
        const d = await handle.describe();
        final = d.status.name.toLowerCase();
        if (d.status.name === 'COMPLETED') {
          const r = ContainmentState.parse(await handle.result());
          final = `completed ${r.status} ${r.position}`;
          if (r.status !== 'contained' || r.position !== 'disabled') problems.push(`ended ${r.status} at ${r.position}`);
        } else problems.push(`${final} after the drill`);
      } catch (err) {
        final = 'not found';
        problems.push((err as Error).message);
      }
      report.finalStates[final] = (report.finalStates[final] ?? 0) + 1;
      const ops = journal.get(id) ?? new Map<string, number>();
      for (const op of expected) {
        const n = ops.get(op) ?? 0;
        if (n === 0) problems.push(`${op} never applied`);
        if (n > 1) report.duplicates.push(`${id}: ${op} applied ${n} times`);
      }
      for (const [op, n] of ops) if (!expected.includes(op)) report.unexpected.push(`${id}: ${op} applied ${n} time(s)`);
      const wrong = notContained(state.identities[id]);
      if (wrong) problems.push(wrong);
      if (problems.length) report.lost.push(`${id}: ${problems.join('; ')}`);
    });
    for (const identity of journal.keys()) if (!ids.includes(identity)) report.unexpected.push(`${identity}: mutated, but no containment was asked for`);
    // Repeats that changed nothing are invisible above; every call, no-op or not, is audited here.
    const calls = state.calls.filter((c) => ids.includes(c.identity));
    report.duplicates.push(...auditCalls(calls, [...workers.flatMap((w) => w.deaths), ...engineFaults], await recordedLocalActivities(client, calls)));
    report.retriedCalls = calls.filter((c) => (c.attempt ?? 1) > 1 && !c.changed).length;
    // The workers ran in their own processes: their logs and every evidence artifact (files, or
    // rows of the shared store) are scanned for every secret they put in the vault (history holds
    // references only; so must these).
    const stores = openStateStores(loadConfig({ CORDON_DATA_DIR: workerCount > 1 ? join(dataDir, 'worker-a') : dataDir, ...shared }));
    try {
      const secrets = await Promise.all((await stores.secrets.refs()).map(async (ref) => (await stores.secrets.read(ref)).secret));
      report.secretsScanned = secrets.length;
      const texts: Array<[string, Promise<string>]> = workers.map((w) => [w.logFile, readFile(w.logFile, 'utf8').catch(() => '')]);
      for (const own of workerCount > 1 ? workers.map((w) => join(dataDir, w.name)) : [dataDir]) {
        const evidenceDir = join(own, 'evidence');
        for (const f of await readdir(evidenceDir, { recursive: true }).catch(() => [])) texts.push([join(evidenceDir, f), readFile(join(evidenceDir, f), 'utf8').catch(() => '')]);
      }
      if (workerCount > 1) for (const sha of await stores.evidence.list()) texts.push([`evidence ${sha} in ${stores.evidence.where}`, stores.evidence.read(sha).then((e) => JSON.stringify(e))]);
      for (const [where, text] of texts) if (secrets.length && findSecret(await text, secrets)) report.leaks.push(`a rotated secret appears in ${where}`);
    } finally {
      await stores.close();
    }
    const runs = await count('WorkflowType = "containment"');
    if (runs > ids.length) report.duplicates.push(`${runs} workflow runs for ${ids.length} identities`);
    const placement = await activityPlacement(client, workflowIds, workers);
    report.byWorker = placement.byWorker;
    report.retriedActivities = placement.retried.length;
    report.workerCrashes = workers.reduce((n, w) => n + w.crashes, 0);
    for (const list of [report.lost, report.duplicates, report.unexpected, report.leaks]) list.sort();
    verified = true;
    return report;
  } finally {
    clearInterval(ticker);
    report.durationSeconds = (Date.now() - t0) / 1000;
    await Promise.all(workers.map((w) => w.stop()));
    await connection.close();
    await engine.stop();
    await stateDb?.stop();
    process.off('exit', killAll);
    if (verified && !report.lost.length && !report.duplicates.length && !report.unexpected.length && !report.leaks.length) rmSync(dataDir, { recursive: true, force: true });
  }
}
