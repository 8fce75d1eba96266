// The fault drill, shared by `npm run drill` and test/drill.test.ts. A batch of containments runs
// on a private dev server (SQLite file) and a worker in its own process, while the worker is
// killed with SIGKILL and restarted, the server is killed and restarted on the same file and
// port, and the lab provider answers nothing for a while. Afterwards every containment must have
// closed where its plan ends, and the lab's journal must show every mutation exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { LabDirectory, type Call, type LabIdentity } from '../activities/providers/lab';
import { CordonInputError, submitSignal } from '../client/containments';
import { containmentWorkflowId } from '../workflows/ids';
import { ContainmentState } from '../workflows/schemas';
import { labIdentity, policyWith, prng, signal, timedLadder } from '../test/fixtures';
import { startDevServer, type DevServer } from './dev-server';
import { mapLimit, sleep } from './measure';
import { resolveTemporalCli } from './temporal-cli';

const ROOT = resolve(__dirname, '..');

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

export interface DrillReport {
  seed: number;
  containments: number;
  workerKills: number;
  /** Worker exits nobody asked for; each was restarted. */
  workerCrashes: number;
  serverRestarts: number;
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
  durationSeconds: number;
  /** Server database, lab file and worker log; kept when the drill found a problem. */
  dataDir: string;
}

/** SIGKILL to a child's whole process group (each child leads its own); quiet if it is gone. */
function killGroup(child: ChildProcess | undefined): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The worker as its own process group: SIGKILL takes it whole, and nothing outlives the drill. */
class WorkerProcess {
  private child?: ChildProcess;
  private stopped = false;
  crashes = 0;
  /** When each worker process died (killed or by itself): what explains a retried call. */
  readonly deaths: number[] = [];

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly logFile: string,
    private readonly onEvent: (text: string) => void,
  ) {}

  /** Starts the worker; resolves with the time it says it is polling (after bundling its workflows). */
  start(): Promise<number> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'workers', 'main.ts')], { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    const log = createWriteStream(this.logFile, { flags: 'a' });
    log.on('error', () => undefined); // a lost log line must not end the drill
    child.stderr!.pipe(log, { end: false });
    child.once('close', (code, sig) => log.end(`-- worker ${child.pid} exited (${sig ?? code})\n`));
    child.once('exit', (code, sig) => {
      if (this.child !== child || this.stopped) return;
      this.crashes++;
      this.deaths.push(Date.now());
      this.onEvent(`worker exited by itself (${sig ?? code}); restarting it`);
      if (this.crashes <= 10) this.start().catch(() => undefined); // its own exit is reported the same way
    });
    return new Promise((ok, fail) => {
      child.stdout!.on('data', (d: Buffer) => {
        log.write(d);
        if (d.toString().includes('cordon worker: ')) ok(Date.now());
      });
      child.once('exit', (code, sig) => fail(new Error(`worker exited (${sig ?? code}) before it was ready; see ${this.logFile}`)));
    });
  }

  /** kill -9 of the whole group; resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.child = undefined; // an exit we asked for is not a crash
    const gone = new Promise((ok) => child.once('exit', ok));
    this.deaths.push(Date.now()); // before the signal: no call of this process can come after it
    killGroup(child);
    await gone;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill();
  }

  /** For process exit: synchronous, no waiting. */
  killNow(): void {
    killGroup(this.child);
  }
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
 *   repeating itself. Both are duplicates.
 * Calls made outside an activity (seeding, tests) are not judged. `faults` are epoch ms; a
 * fault up to `slackMs` before the earlier call still counts (it is timed just before the kill).
 */
export function auditCalls(calls: readonly Call[], faults: readonly number[], slackMs = 1000): string[] {
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
    if (executions.size > 1) {
      found.push(`${identity}: ${op} requested by ${executions.size} activities (${[...executions.keys()].join(', ')}), ${list.filter((c) => c.changed).length} of the calls changing something`);
      continue;
    }
    const byOrder = [...list].sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < byOrder.length; i++) {
      const prev = byOrder[i - 1]!;
      const cur = byOrder[i]!;
      const [from, to] = [Date.parse(prev.at), Date.parse(cur.at)];
      if ((cur.attempt ?? 1) <= (prev.attempt ?? 1)) {
        found.push(`${identity}: ${op}: attempt ${cur.attempt} of activity ${cur.activityId} applied it twice (${prev.at}, ${cur.at})`);
      } else if (!faults.some((f) => f >= from - slackMs && f <= to)) {
        found.push(`${identity}: ${op} repeated by attempt ${cur.attempt} at ${cur.at} (after attempt ${prev.attempt} at ${prev.at}) with no worker kill or server restart between`);
      }
    }
  }
  return found.sort();
}

export async function runDrill(o: DrillOptions): Promise<DrillReport> {
  const t0 = Date.now();
  const rand = prng(o.seed);
  const say = o.onEvent ?? (() => undefined);
  // The fault plan: kills and restarts in a seeded order; the outage starts at one of the kills.
  const faults = [...Array<'worker'>(o.workerKills).fill('worker'), ...Array<'server'>(o.serverRestarts).fill('server')]
    .map((f) => ({ f, key: rand() }))
    .sort((a, b) => a.key - b.key)
    .map((x) => x.f);
  const workerFaults = faults.flatMap((f, i) => (f === 'worker' ? [i] : []));
  const outageAt = o.outageMs > 0 ? workerFaults[Math.floor(rand() * workerFaults.length)] : undefined;
  if (o.outageMs > 0 && outageAt === undefined) throw new Error('a lab outage starts at a worker kill: ask for at least one');
  const cli = await resolveTemporalCli();
  if (!cli.path) throw new Error('the drill needs a local temporal CLI (see README: Requirements)');
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-drill-'));
  const dbFile = join(dataDir, 'temporal.db');
  const labFile = join(dataDir, 'lab', 'directory.json');
  const taskQueue = 'cordon-drill';
  const lab = new LabDirectory(labFile);
  const policy = policyWith(timedLadder(o.stageAfter), { retainFor: o.retainFor, ...(o.evidence ? {} : { evidence: [] }) });
  // The worker approves the drill's policy from a file, as an operator configures it.
  const policyFile = join(dataDir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(policy));
  const ids = Array.from({ length: o.containments }, (_, i) => `drill-${String(i).padStart(4, '0')}`);
  const workflowIds = ids.map((identityId) => containmentWorkflowId({ provider: 'lab', identityId }));

  let server: DevServer = await startDevServer({ cli: cli.path, dbFile, headless: true, detached: true });
  const port = Number(server.address.split(':')[1]);
  // The worker sees only the drill's settings, never the caller's Temporal or provider configuration.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k)));
  const worker = new WorkerProcess(
    { ...env, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: 'default', CORDON_DATA_DIR: dataDir, CORDON_LAB_FILE: labFile, CORDON_TASK_QUEUE: taskQueue, CORDON_METRICS_PORT: '0', CORDON_POLICY: policyFile },
    join(dataDir, 'worker.log'),
    say,
  );
  const killAll = () => {
    worker.killNow();
    killGroup(server.process);
  };
  process.on('exit', killAll);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const report: DrillReport = {
    seed: o.seed,
    containments: o.containments,
    workerKills: 0,
    workerCrashes: 0,
    serverRestarts: 0,
    outageSeconds: 0,
    labDownSeconds: 0,
    submitRetries: 0,
    finalStates: {},
    duplicates: [],
    retriedCalls: 0,
    lost: [],
    unexpected: [],
    durationSeconds: 0,
    dataDir,
  };
  let submitted = 0;
  let verified = false;
  const serverKills: number[] = [];
  const count = async (query: string) => (await client.workflow.count(`TaskQueue = "${taskQueue}" AND ${query}`)).count;
  const ticker = setInterval(() => {
    count("ExecutionStatus != 'Running'").then(
      (closed) => o.onProgress?.(closed, o.containments, `containments closed; ${submitted} signals sent, ${report.workerKills} worker kills, ${report.serverRestarts} server restarts`),
      () => undefined, // the server is down: the next tick tells
    );
  }, 1000);

  try {
    // Seeded before the worker starts: the lab file has one writer at a time.
    await lab.seed(Object.fromEntries(ids.map((id) => [id, labIdentity()])));
    // The slowest start-up so far (bundling the workflows): an outage must outlast a restart.
    let startupMs = 0;
    const startWorker = async () => {
      const t = Date.now();
      const ready = await worker.start();
      startupMs = Math.max(startupMs, ready - t);
      return ready;
    };
    await startWorker();
    say(`worker up in ${startupMs} ms; ${o.containments} signals over ${o.spreadMs / 1000} s`);
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
        say(`${at(Date.now())} dev server killed (SIGKILL)`);
        serverKills.push(Date.now());
        await server.stop('SIGKILL');
        await sleep(pause);
        server = await startDevServer({ cli: cli.path, dbFile, port, headless: true, detached: true });
        report.serverRestarts++;
        say(`${at(Date.now())} dev server back on ${server.address} after ${server.startedInMs} ms`);
        continue;
      }
      await worker.kill();
      report.workerKills++;
      say(`${at(Date.now())} worker killed (SIGKILL)`);
      let unavailableUntil = 0;
      if (i === outageAt) {
        // Written while no worker runs: the lab's writes are atomic but not locked across processes.
        // It lasts outageMs past a slow restart of the worker, so a running worker meets all of it.
        const down = Date.now();
        unavailableUntil = down + pause + 1.5 * startupMs + o.outageMs;
        await lab.update((s) => void (s.unavailableUntil = new Date(unavailableUntil).toISOString()));
        report.labDownSeconds = (unavailableUntil - down) / 1000;
      }
      await sleep(pause);
      const ready = await startWorker();
      if (unavailableUntil) {
        report.outageSeconds = Math.max(0, (unavailableUntil - ready) / 1000);
        say(`${at(ready)} worker back; the lab is down until ${at(unavailableUntil)} (${report.outageSeconds.toFixed(1)} s with a worker running)`);
      } else {
        say(`${at(ready)} worker back`);
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
    report.duplicates.push(...auditCalls(calls, [...worker.deaths, ...serverKills]));
    report.retriedCalls = calls.filter((c) => (c.attempt ?? 1) > 1 && !c.changed).length;
    const runs = await count('WorkflowType = "containment"');
    if (runs > ids.length) report.duplicates.push(`${runs} workflow runs for ${ids.length} identities`);
    report.workerCrashes = worker.crashes;
    for (const list of [report.lost, report.duplicates, report.unexpected]) list.sort();
    verified = true;
    return report;
  } finally {
    clearInterval(ticker);
    report.durationSeconds = (Date.now() - t0) / 1000;
    await worker.stop();
    await connection.close();
    await server.stop();
    process.off('exit', killAll);
    if (verified && !report.lost.length && !report.duplicates.length && !report.unexpected.length) rmSync(dataDir, { recursive: true, force: true });
  }
}
