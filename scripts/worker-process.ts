// A Cordon worker in a process of its own (workers/main.ts), as a host runs it: the drill and the
// cluster test start, kill -9 and restart them, and read back which worker ran which activity.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const ROOT = resolve(__dirname, '..');

/** SIGKILL to a child's whole process group (each child leads its own); quiet if it is gone. */
export function killGroup(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** The worker as its own process group: SIGKILL takes it whole, and nothing outlives its owner. */
export class WorkerProcess {
  private child?: ChildProcess;
  private stopped = false;
  crashes = 0;
  /** When each of its processes died (killed or by itself): what explains a retried call. */
  readonly deaths: number[] = [];
  /** Every process it started: a worker's identity in history is `<pid>@<host>`. */
  readonly pids: number[] = [];

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
    private readonly onEvent: (text: string) => void,
    readonly name = 'worker',
    /** The program it runs: the Cordon worker, or a variant of it (the bench's). */
    private readonly entry = join(ROOT, 'workers', 'main.ts'),
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the worker; resolves with the time it says it is polling (after bundling its workflows). */
  start(): Promise<number> {
    const child = spawn(process.execPath, ['--import', 'tsx', this.entry], { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    if (child.pid) this.pids.push(child.pid);
    const log = createWriteStream(this.logFile, { flags: 'a' });
    log.on('error', () => undefined); // a lost log line must not end the drill
    child.stderr!.pipe(log, { end: false });
    child.once('close', (code, sig) => log.end(`-- ${this.name} ${child.pid} exited (${sig ?? code})\n`));
    child.once('exit', (code, sig) => {
      if (this.child !== child || this.stopped) return;
      this.crashes++;
      this.deaths.push(Date.now());
      this.onEvent(`${this.name} exited by itself (${sig ?? code}); restarting it`);
      if (this.crashes <= 10) this.start().catch(() => undefined); // its own exit is reported the same way
    });
    return new Promise((ok, fail) => {
      child.stdout!.on('data', (d: Buffer) => {
        log.write(d);
        if (d.toString().includes('cordon worker: ')) ok(Date.now());
      });
      child.once('exit', (code, sig) => fail(new Error(`${this.name} exited (${sig ?? code}) before it was ready; see ${this.logFile}`)));
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

  /** A graceful stop (SIGTERM: the SDK drains within its grace time), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((ok) => child.once('exit', ok));
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child), 15_000);
    await gone;
    clearTimeout(timer);
  }

  /** For process exit: synchronous, no waiting. */
  killNow(): void {
    killGroup(this.child);
  }
}

const EventType = temporal.api.enums.v1.EventType;

/** One activity as it finished: the worker that ran its final attempt and what it returned. */
export interface ActivityRun {
  workflowId: string;
  activity: string;
  attempt: number;
  worker: string;
  /** A local activity (v4's provider calls): it ran inside a workflow task of `worker`. */
  local?: boolean;
  /** The result, decoded from its JSON payload (undefined if it failed or returned nothing). */
  result?: unknown;
}

const decode = (p: temporal.api.common.v1.IPayload | null | undefined): unknown => {
  if (!p?.data?.length) return undefined;
  try {
    return JSON.parse(Buffer.from(p.data).toString('utf8'));
  } catch {
    return undefined; // binary or encrypted payloads are not needed here
  }
};

/** A local activity's marker: its type, id, attempt and result (undefined if it failed); undefined for any other event. */
export function localActivity(e: temporal.api.history.v1.IHistoryEvent): { activity: string; activityId: string; attempt: number; result?: unknown } | undefined {
  const marker = e.markerRecordedEventAttributes;
  if (marker?.markerName !== 'core_local_activity') return undefined;
  const data = decode(marker.details?.data?.payloads?.[0]) as { activity_type?: string; activity_id?: string; attempt?: number } | undefined;
  if (!data?.activity_type) return undefined;
  return { activity: data.activity_type, activityId: data.activity_id ?? '', attempt: data.attempt ?? 1, result: decode(marker.details?.result?.payloads?.[0]) };
}

/** The local activities of one type in a history, in order. */
export const localRuns = (events: readonly temporal.api.history.v1.IHistoryEvent[], activity: string) =>
  events.map(localActivity).filter((r) => r?.activity === activity) as NonNullable<ReturnType<typeof localActivity>>[];

/**
 * Which worker ran which activity, from the workflows' histories: each activity's started event
 * names the worker identity (`<pid>@<host>`) that ran its final attempt, eager or not; a local
 * activity's marker was recorded by the workflow task that ran it, whose completed event names
 * the worker. Returns every run, worker name → activity type → count, and the runs that needed
 * more than one attempt.
 */
export async function activityPlacement(
  client: Client,
  workflowIds: readonly string[],
  workers: readonly WorkerProcess[],
): Promise<{ runs: ActivityRun[]; byWorker: Record<string, Record<string, number>>; retried: ActivityRun[] }> {
  const host = hostname();
  const nameOf = new Map<string, string>(workers.flatMap((w) => w.pids.map((pid) => [`${pid}@${host}`, w.name] as const)));
  const runs: ActivityRun[] = [];
  for (const workflowId of workflowIds) {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const typeOf = new Map<string, string>();
    const byScheduled = new Map<string, ActivityRun>();
    let taskWorker = '';
    for (const e of events) {
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) taskWorker = e.workflowTaskCompletedEventAttributes?.identity ?? '';
      const local = localActivity(e);
      if (local) runs.push({ workflowId, ...local, worker: nameOf.get(taskWorker) ?? `other (${taskWorker})`, local: true });
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) typeOf.set(String(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?');
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
        const a = e.activityTaskStartedEventAttributes!;
        const run: ActivityRun = { workflowId, activity: typeOf.get(String(a.scheduledEventId)) ?? '?', attempt: a.attempt ?? 1, worker: nameOf.get(a.identity ?? '') ?? `other (${a.identity})` };
        byScheduled.set(String(a.scheduledEventId), run);
        runs.push(run);
      }
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
        const a = e.activityTaskCompletedEventAttributes!;
        const run = byScheduled.get(String(a.scheduledEventId));
        if (run) run.result = decode(a.result?.payloads?.[0]);
      }
    }
  }
  const byWorker: Record<string, Record<string, number>> = {};
  for (const r of runs) {
    const counts = (byWorker[r.worker] ??= {});
    counts[r.activity] = (counts[r.activity] ?? 0) + 1;
  }
  return { runs, byWorker, retried: runs.filter((r) => r.attempt > 1) };
}
