// The benchmark's measurements, one function per phase. Each phase gets its own worker, task
// queue and data folder, so none inherits another's lab file, workflow cache or backlog.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { setFlagsFromString } from 'node:v8';
import { bundleWorkflowCode, Worker, type NativeConnection } from '@temporalio/worker';
import { loadConfig, type CordonConfig } from '../activities/config';
import { cpuSince } from './process-cpu';
import { LabDirectory } from '../activities/providers/lab';
import { closeProviders, createProviders, type ProviderRegistry } from '../activities/providers/registry';
import type { IdentityProvider } from '../activities/providers/provider';
import { loadOrCreateSealKey, readSealPublicKey, sealKeyFiles } from '../activities/command-seal';
import { describeContainment, sendCommand, submitSignal } from '../client/containments';
import { containmentWorkflowId } from '../workflows/ids';
import { SA } from '../workflows/search-attributes';
import type { Policy } from '../workflows/policy';
import { ContainmentState, type CordonRole, type IdentitySignal, type Scope, type SuppressionAction, type SuppressionResult } from '../workflows/schemas';
import type { FirstStep } from '../workflows/contract';
import { noop } from '../activities/containment';
import { createCordonWorker, preloadModules, quietBundlerLogger } from '../workers/worker';
import { approvalLadder, labIdentity, policyWith, signal, timedLadder } from '../test/fixtures';
import { benchIds, ShardedLab, labBench, type BenchProvider } from './bench-providers';
import { mapLimit, percentiles, sleep, type Percentiles, type Progress } from './measure';
import { localActivity, localRuns, WorkerProcess } from './worker-process';

export interface Bench {
  client: Client;
  connection: NativeConnection;
  namespace: string;
  /** A temporary folder for every phase's data. */
  root: string;
  /** The frontend's address, for worker processes the scale phase adds. */
  address: string;
  engine: 'dev' | 'cluster';
  /** The server's database size (the dev server's SQLite file and WAL, or the cluster's PostgreSQL databases). */
  dbSize(): Promise<{ bytes: number; walBytes: number }>;
  /** Scale-phase worker processes beyond the first (several hosts' shape). */
  extraWorkers: number;
  /** The scale phase's workers keep at most this many workflows in memory (unset: CORDON_MAX_CACHED_WORKFLOWS's default). */
  maxCachedWorkflows?: number;
  progress: Progress;
  /** The development issuer the bench's workers trust (the scale phase's operator commands). */
  issuer: { env: Record<string, string>; token(username: string, roles: CordonRole[]): Promise<string>; machineToken(client: string, issuerRoles: string[], o?: { ttlSeconds?: number }): Promise<string> };
}

export interface Rate extends Percentiles {
  concurrency: number;
  perSecond: number;
  /** Time to suppress only: the client's request → the server accepted the signal (the rest is the worker's). */
  accepted?: Percentiles;
  /**
   * Time to suppress only, in two parts: the client's request → the worker's first suppression
   * call began (the engine and the worker), and that call → the last acknowledgement (the provider,
   * and any wait for the worker's event loop).
   */
  called?: Percentiles;
  inProvider?: Percentiles;
  /**
   * Time to suppress only: the engine floor at the same concurrency and runs, half of them
   * measured just before this level and half just after. The ratios use it: on this shared VM
   * the floor at 8 in flight has read 31 and 45 workflows/s minutes apart, more than the
   * differences the ratios are there to show.
   */
  floor?: Rate;
  /** CPU ms per run spent during the burst, by process kind (engine, bench = this process's worker and client, the provider's server). */
  cpuMs?: Record<string, number>;
  /** Time to suppress, first level only: the untimed containments run before it (BenchProvider.warmUpRuns). */
  warmUp?: WarmUp;
}

/** CPU ms per run over every process kind. */
export const cpuTotal = (cpu: Record<string, number>) => Object.values(cpu).reduce((a, v) => a + v, 0);

/**
 * The highest throughput / floor a row could reach on `cores` if Cordon cost nothing beyond the
 * floor's own processes (engine, bench) and its provider's servers cost what they did: all cores
 * busy at the floor's CPU per run plus what the other processes took beyond the floor's. A
 * provider's server on the same cores lowers it; a floor that left cores idle raises it above 1.
 */
export function ceiling(cores: number, row: Rate, floor: Rate): number | undefined {
  if (!row.cpuMs || !floor.cpuMs || !floor.perSecond) return undefined;
  const others = (cpu: Record<string, number>) => cpuTotal(cpu) - (cpu.engine ?? 0) - (cpu.bench ?? 0);
  const perRun = cpuTotal(floor.cpuMs) + Math.max(0, others(row.cpuMs) - others(floor.cpuMs));
  return perRun > 0 ? (cores * 1000) / perRun / floor.perSecond : undefined;
}

/** Untimed containments before a provider's first level, with the CPU per run of each chunk of them, by process kind. */
export interface WarmUp {
  runs: number;
  chunk: number;
  cpuMs: Record<string, number>[];
}
const WARM_UP_CHUNK = 250;

const perRun = (cpu: Record<string, number>, runs: number) => Object.fromEntries(Object.entries(cpu).map(([k, ms]) => [k, Math.round((ms / runs) * 10) / 10]));

/** Unmeasured runs first: a new worker creates its workflow context and caches on first use. */
const WARMUP = 5;
/**
 * The shipped NHI rule's suppression with evidence beside it, then parked (open for rollback), as
 * a real containment waits at a gate or in retention for days. Until this session the bench
 * closed each one 1 ms after suppression: a timer, a workflow task and a completion more per
 * containment than any real one does in its first minutes, loading the server under comparison.
 */
export const SUPPRESS_AND_PARK = policyWith([], { retainFor: '1h' });
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export async function withBenchWorker<T>(
  b: Bench,
  name: string,
  fn: (config: CordonConfig, worker: Worker) => Promise<T>,
  o: { provider?: BenchProvider; providers?: ProviderRegistry | ((config: CordonConfig) => ProviderRegistry); policy?: Policy; maxCachedWorkflows?: number } = {},
): Promise<T> {
  // Each phase's worker approves the phase's policy, as an operator would configure it.
  const dataDir = join(b.root, name);
  mkdirSync(dataDir, { recursive: true });
  const policyFile = o.policy ? join(dataDir, 'policy.json') : undefined;
  if (policyFile) writeFileSync(policyFile, JSON.stringify(o.policy));
  const base: CordonConfig = { ...loadConfig({ CORDON_DATA_DIR: dataDir, ...b.issuer.env, ...(policyFile ? { CORDON_POLICY: policyFile } : {}) }), taskQueue: `bench-${name}`, metricsPort: 0 };
  if (o.maxCachedWorkflows) base.maxCachedWorkflows = o.maxCachedWorkflows;
  const config = o.provider ? o.provider.configure(base) : base;
  const own = typeof o.providers === 'function' ? o.providers(config) : undefined;
  const { worker, close } = await createCordonWorker({ connection: b.connection, namespace: b.namespace, config, providers: own ?? (o.providers as ProviderRegistry | undefined), shutdownGraceTime: '1s' });
  try {
    return await worker.runUntil(fn(config, worker));
  } finally {
    await close();
    if (own) await closeProviders(own);
  }
}

/** Floor activities that ran, by tag (the workflow id): seen in this process, as suppressions are. */
const floorAcks = new Map<string, (at: number) => void>();

/**
 * A worker for the floor alone: the same worker settings as Cordon's, but a bundle of the floor
 * workflow only. Every workflow evaluates its bundle's modules, so on Cordon's bundle the floor
 * would pay for Cordon's schemas, and the floor would no longer be the engine's.
 */
let floorBundle: ReturnType<typeof bundleWorkflowCode> | undefined;

async function withFloorWorker<T>(b: Bench, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const config = loadConfig({ CORDON_DATA_DIR: join(b.root, 'floor') });
  const taskQueue = 'bench-floor';
  setFlagsFromString(`--max-old-space-size=${config.workflowHeapMb}`);
  const worker = await Worker.create({
    connection: b.connection,
    namespace: b.namespace,
    taskQueue,
    workflowBundle: await (floorBundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../workflows/engine-floor'), preloadModules: preloadModules({ stackTraces: config.workflowStackTraces }), logger: quietBundlerLogger })),
    activities: {
      noop: async (tag: string) => {
        const r = await noop(tag);
        floorAcks.get(tag)?.(r.at);
        return r;
      },
    },
    shutdownGraceTime: '1s',
    maxCachedWorkflows: config.maxCachedWorkflows,
  });
  return worker.runUntil(fn(taskQueue));
}

/**
 * The moments the worker's providers acknowledged suppressions, seen in this process, where the
 * bench's worker runs: the same instant the activity stamps, learnt with no request to the server
 * (polling history for it loads the server the floor is compared with). Per identity, resolves
 * once each expected action has been acknowledged, with the last acknowledgement.
 */
class SuppressionAcks {
  private readonly waiting = new Map<string, { actions: Set<string>; first?: number; last: number; done: (t: { first: number; last: number }) => void }>();

  wrap(registry: ProviderRegistry): ProviderRegistry {
    const acked = (identityId: string, action: string) => {
      const w = this.waiting.get(identityId);
      if (!w) return;
      w.actions.delete(action);
      w.last = Date.now();
      if (w.actions.size) return;
      this.waiting.delete(identityId);
      w.done({ first: w.first ?? w.last, last: w.last });
    };
    const watch = (p: IdentityProvider): IdentityProvider =>
      new Proxy(p, {
        get: (target, prop, receiver) => {
          if (prop !== 'suppress') {
            const v = Reflect.get(target, prop, receiver) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          }
          return async (identityId: string, action: SuppressionAction, scope?: Scope) => {
            const w = this.waiting.get(identityId);
            if (w) w.first ??= Date.now();
            const r = await target.suppress(identityId, action, scope);
            acked(identityId, action);
            return r;
          };
        },
      });
    return new Map([...registry].map(([name, p]) => [name, watch(p)]));
  }

  /** Resolves with the times the first of `actions` on `identityId` was called and the last was acknowledged. */
  expect(identityId: string, actions: readonly string[], timeoutMs = 120_000): Promise<{ first: number; last: number }> {
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => (this.waiting.delete(identityId), fail(new Error(`${identityId}: suppression not acknowledged within ${timeoutMs} ms`))), timeoutMs);
      this.waiting.set(identityId, { actions: new Set(actions), last: 0, done: (t) => (clearTimeout(timer), ok(t)) });
    });
  }
}

interface Contained {
  /** The client's request (before submitSignal) → the provider acknowledged the last suppression, ms: as the floor's request → its activity ran. */
  tts: number;
  requestedAt: number;
  suppressedAt: number;
  workflowId: string;
}

const EventType = temporal.api.enums.v1.EventType;
const keyword = (p: temporal.api.common.v1.IPayload | null | undefined) => (p?.data ? (JSON.parse(Buffer.from(p.data).toString('utf8')) as unknown) : undefined);

/** The provider's acknowledgement time a suppression's local-activity marker carries in its result (v4), or the last of the first step's (v6). */
function suppressAck(e: temporal.api.history.v1.IHistoryEvent): number | undefined {
  const local = localActivity(e);
  const ats =
    local?.activity === 'suppress'
      ? [(local.result as SuppressionResult | undefined)?.at]
      : local?.activity === 'loadPolicyAndSuppress'
        ? ((local.result as FirstStep | undefined)?.attempts ?? []).map((x) => ('result' in x ? x.result.at : undefined))
        : [];
  const acked = ats.flatMap((at) => (at ? [Date.parse(at)] : []));
  return acked.length ? Math.max(...acked) : undefined;
}

/**
 * Waits until the containment publishes CordonStage "suppressed", by long-polling its history,
 * and returns the last suppression's acknowledgement from its marker (undefined before v4).
 * Not by polling the state query: queries are worker tasks and would load what is measured; and
 * not by waiting for the result: closing needs a timer, which the server fires ~1 s late.
 */
async function untilSuppressed(client: Client, workflowId: string, runId: string): Promise<number | undefined> {
  const execution = { workflowId, runId };
  let nextPageToken: Uint8Array | undefined;
  let ack: number | undefined;
  for (;;) {
    const res = await client.workflowService.getWorkflowExecutionHistory({ namespace: client.options.namespace, execution, waitNewEvent: true, skipArchival: true, nextPageToken });
    for (const e of res.history?.events ?? []) {
      const at = suppressAck(e);
      if (at !== undefined) ack = Math.max(ack ?? 0, at);
      const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
      if (keyword(fields?.[SA.stage.name]) === 'suppressed') return ack;
      if (keyword(fields?.[SA.status.name]) === 'needs-attention') throw new Error(`${workflowId} needs attention: suppression failed`);
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) throw new Error(`${workflowId} closed without suppression`);
    }
    if (!res.nextPageToken?.length) throw new Error(`${workflowId} closed without suppression`);
    nextPageToken = res.nextPageToken;
  }
}

/** Submits one signal and waits for suppression; the state says when the provider acknowledged it. */
export async function containOnce(client: Client, taskQueue: string, s: IdentitySignal, o: { evidenceFirst?: boolean } = {}): Promise<Contained> {
  const requestedAt = Date.now();
  const { workflowId, runId } = await submitSignal(client, s, { taskQueue, evidenceFirst: o.evidenceFirst });
  // From the history already read; a query (a worker task, load the floor does not carry) only for pre-v4 histories.
  const suppressedAt = (await untilSuppressed(client, workflowId, runId)) ?? Date.parse(ContainmentState.parse(await describeContainment(client, workflowId)).suppressedAt!);
  return { tts: suppressedAt - requestedAt, requestedAt, suppressedAt, workflowId };
}

async function warmUp(b: Bench, config: CordonConfig, provider: BenchProvider, tag: string): Promise<void> {
  const ids = benchIds(provider, range(WARMUP).map((i) => `bench-warmup-${tag}-${i}`));
  await provider.seed(config, ids);
  for (const id of ids) await containOnce(b.client, config.taskQueue, signal({ ...provider.signal, identityId: id }));
}

/** One level of the engine floor, before it is summed up: each run's time, the burst's span, its CPU. */
interface FloorLevel {
  ms: number[];
  spanMs: number;
  cpuMs: Record<string, number>;
}

/**
 * The engine floor: the smallest workflow (start → one no-op activity) at each concurrency,
 * measured as time to suppress is: from the client's request to the moment the activity ran,
 * and throughput from the first request to the last activity.
 */
export async function engineFloor(b: Bench, concurrencies: number[], runs: number, tag = ''): Promise<Rate[]> {
  const levels = await floorLevels(b, concurrencies, runs, tag);
  return levels.map((l, i) => floorRate(concurrencies[i]!, [l]));
}

/** Levels measured apart (before and after a row), summed up as one: all their runs, over all their spans. */
function floorRate(concurrency: number, levels: FloorLevel[]): Rate {
  const ms = levels.flatMap((l) => l.ms);
  const cpu: Record<string, number> = {};
  for (const l of levels) for (const [k, v] of Object.entries(l.cpuMs)) cpu[k] = (cpu[k] ?? 0) + v;
  return { concurrency, ...percentiles(ms), perSecond: ms.length / (levels.reduce((a, l) => a + l.spanMs, 0) / 1000), cpuMs: perRun(cpu, ms.length) };
}

async function floorLevels(b: Bench, concurrencies: number[], runs: number, tag: string): Promise<FloorLevel[]> {
  return withFloorWorker(b, async (taskQueue) => {
    // Released at the activity's acknowledgement, as a containment is at its suppression's: the
    // rest of each run (its completion) goes on beside the next, as a containment's does.
    const once = async (workflowId: string) => {
      const ran = new Promise<number>((ok) => floorAcks.set(workflowId, ok));
      const requestedAt = Date.now();
      await b.client.workflow.start('engineFloor', { taskQueue, workflowId, args: [workflowId] });
      const at = await ran;
      floorAcks.delete(workflowId);
      return { ms: at - requestedAt, at };
    };
    for (const i of range(WARMUP)) await once(`floor${tag}-warmup-${i}`);
    const out: FloorLevel[] = [];
    for (const c of concurrencies) {
      let done = 0;
      const cpu = cpuSince();
      const t0 = Date.now();
      const results = await mapLimit(range(runs), c, async (i) => {
        const r = await once(`floor${tag}-c${c}-${i}`);
        b.progress.update(`engine floor${tag && ` (beside ${tag.slice(1)})`}`, ++done, runs, `concurrency ${c}`);
        return r;
      });
      const last = Math.max(...results.map((r) => r.at));
      out.push({ ms: results.map((r) => r.ms), spanMs: last - t0, cpuMs: cpu() });
    }
    return out;
  });
}

/**
 * Time to suppress on one provider at each concurrency, and containments per second from the
 * first signal to the last acknowledged suppression. A fresh worker and lab file per level; with
 * `pairFloor`, the engine floor at that level is measured beside it (half before, half after).
 */
export async function timeToSuppress(b: Bench, provider: BenchProvider, concurrencies: number[], runs: number, o: { pairFloor?: boolean } = {}): Promise<Rate[]> {
  const out: Rate[] = [];
  const acks = new SuppressionAcks();
  const actions = SUPPRESS_AND_PARK.rules[0]!.suppress;
  /** Contains `ids`, `c` in flight, each released at its last suppression's acknowledgement. */
  const burst = (config: CordonConfig, ids: string[], c: number, label: string) => {
    let done = 0;
    return mapLimit(ids, c, async (id) => {
      const acked = acks.expect(id, actions);
      const requestedAt = Date.now();
      await submitSignal(b.client, signal({ ...provider.signal, identityId: id }), { taskQueue: config.taskQueue });
      const acceptedAt = Date.now();
      const { first: calledAt, last: suppressedAt } = await acked;
      b.progress.update(label, ++done, ids.length, `concurrency ${c}`);
      return { tts: suppressedAt - requestedAt, accept: acceptedAt - requestedAt, called: calledAt - requestedAt, inProvider: suppressedAt - calledAt, suppressedAt };
    });
  };
  for (const [level, c] of concurrencies.entries()) {
    const rate = await withBenchWorker(
      b,
      `tts-${provider.name}-c${c}`,
      async (config) => {
        let warmedUp: WarmUp | undefined;
        if (level === 0 && provider.warmUpRuns) {
          // In chunks, each with its CPU per run: the table shows whether the provider's server had settled.
          // At least warmUpRuns, then on (up to twice as many) while its server's CPU per run still falls.
          warmedUp = { runs: 0, chunk: WARM_UP_CHUNK, cpuMs: [] };
          const server = (c: Record<string, number>) => Object.entries(c).reduce((sum, [k, ms]) => (k === 'bench' || k === 'engine' ? sum : sum + ms), 0);
          const settled = (c: Record<string, number>[]) => c.length >= 2 && server(c.at(-1)!) >= 0.9 * server(c.at(-2)!);
          while (warmedUp.runs < provider.warmUpRuns || (warmedUp.runs < 2 * provider.warmUpRuns && !settled(warmedUp.cpuMs))) {
            const chunk = benchIds(provider, range(WARM_UP_CHUNK).map((i) => `bench-warmup-${provider.name}-${warmedUp!.runs + i}`));
            await provider.seed(config, chunk);
            const cpu = cpuSince();
            await burst(config, chunk, 8, `warming ${provider.name} up (untimed, ${warmedUp.runs + chunk.length}, at least ${provider.warmUpRuns})`);
            warmedUp.cpuMs.push(perRun(cpu(), chunk.length));
            warmedUp.runs += chunk.length;
          }
        }
        await warmUp(b, config, provider, `${provider.name}-c${c}`);
        const ids = benchIds(provider, range(runs).map((i) => `bench-${provider.name}-c${c}-${i}`));
        await provider.seed(config, ids);
        // Half the floor's runs just before the burst and half just after (this worker idles
        // meanwhile): a machine whose speed drifts during the row weighs on both alike.
        const half = Math.ceil(runs / 2);
        const floorBefore = o.pairFloor ? await floorLevels(b, [c], half, `-${provider.name}`) : [];
        const cpu = cpuSince();
        const t0 = Date.now();
        const results = await burst(config, ids, c, `time to suppress (${provider.name})`);
        const last = Math.max(...results.map((r) => r.suppressedAt));
        const spent = cpu();
        const floorAfter = o.pairFloor && runs > half ? await floorLevels(b, [c], runs - half, `-${provider.name}-after`) : [];
        const floor = o.pairFloor ? floorRate(c, [...floorBefore, ...floorAfter]) : undefined;
        return { concurrency: c, ...percentiles(results.map((r) => r.tts)), perSecond: runs / ((last - t0) / 1000), accepted: percentiles(results.map((r) => r.accept)), called: percentiles(results.map((r) => r.called)), inProvider: percentiles(results.map((r) => r.inProvider)), floor, cpuMs: perRun(spent, runs), warmUp: warmedUp };
      },
      { provider, policy: SUPPRESS_AND_PARK, providers: (config) => acks.wrap(createProviders(config)) },
    );
    out.push(rate);
  }
  return out;
}

export interface EvidenceComparison {
  evidenceDelayMs: number;
  concurrency: number;
  parallel: Percentiles;
  evidenceFirst: Percentiles;
  /** How long evidence capture actually took (its activity scheduled → completed, from history), both paths. */
  evidenceObserved: Percentiles;
  /** Time to suppress in parallel divided by evidence first (smaller is better for parallel). */
  ratio: { p50: number; p95: number };
}

const EVIDENCE_CONCURRENCY = 8;

/**
 * Suppression beside slow evidence (Cordon) against evidence first, then suppression (the usual
 * playbook), on lab identities whose evidence takes `evidenceMs`. Both in the same run,
 * interleaved, so that both see the same load.
 */
export async function evidenceFirst(b: Bench, runs: number, evidenceMs: number): Promise<EvidenceComparison> {
  const n = Math.min(runs, 40); // each evidence-first run takes evidenceMs at least
  return withBenchWorker(b, 'evidence-first', async (config) => {
    await warmUp(b, config, labBench, 'evidence');
    const ids = range(2 * n).map((i) => `bench-evidence-${i}`);
    await new LabDirectory(config.labFile).seed(Object.fromEntries(ids.map((id) => [id, labIdentity({ faults: { evidenceDelayMs: evidenceMs } })])));
    let done = 0;
    const results = await mapLimit(ids, EVIDENCE_CONCURRENCY, async (id, i) => {
      const r = await containOnce(b.client, config.taskQueue, signal({ identityId: id }), { evidenceFirst: i % 2 === 1 });
      b.progress.update('evidence first vs parallel', ++done, ids.length);
      return { ...r, evidenceFirst: i % 2 === 1 };
    });
    const parallel = percentiles(results.filter((r) => !r.evidenceFirst).map((r) => r.tts));
    const first = percentiles(results.filter((r) => r.evidenceFirst).map((r) => r.tts));
    const observed = await mapLimit(results, 4, (r) => evidenceSpan(b.client, r.workflowId));
    return {
      evidenceDelayMs: evidenceMs,
      concurrency: EVIDENCE_CONCURRENCY,
      parallel,
      evidenceFirst: first,
      evidenceObserved: percentiles(observed.filter((x) => Number.isFinite(x))),
      ratio: { p50: parallel.p50 / first.p50, p95: parallel.p95 / first.p95 },
    };
  }, { policy: SUPPRESS_AND_PARK });
}

/**
 * Evidence capture as it was observed: the first evidence activity scheduled → the last one
 * completed (ms), or, when v5 took it in a local activity, the slowest kind's time inside it (the
 * marker has no start time of its own).
 */
async function evidenceSpan(client: Client, workflowId: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const evidenceIds = new Set<string>();
  let first = Infinity;
  let last = -Infinity;
  const time = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled && /^captureEvidence/.test(scheduled.activityType?.name ?? '')) {
      evidenceIds.add(String(e.eventId));
      first = Math.min(first, time(e));
    }
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed && evidenceIds.has(String(completed.scheduledEventId))) last = Math.max(last, time(e));
  }
  if (evidenceIds.size) return last - first;
  // v8 takes the first attempt at each kind in the first step, and the rest (if any) in a capture of their own.
  const quick = [
    ...localRuns(events, 'loadPolicyAndSuppress').flatMap((r) => (r.result as FirstStep | undefined)?.evidence ?? []),
    ...localRuns(events, 'captureEvidenceSet').flatMap((r) => (r.result as { ms: number }[] | undefined) ?? []),
  ];
  return quick.length ? Math.max(...quick.map((o) => o.ms)) : NaN;
}

export interface LadderCost {
  /** History events of one complete restrict → rotate → disable containment on timer gates. */
  events: number;
  historyBytes: number;
  byType: Record<string, number>;
  /** The engine floor's history, for scale. */
  floorEvents: number;
}

export async function ladderCost(b: Bench): Promise<LadderCost> {
  return withBenchWorker(b, 'cost', async (config) => {
    await labBench.seed(config, ['bench-cost']);
    const { workflowId } = await submitSignal(b.client, signal({ identityId: 'bench-cost' }), { taskQueue: config.taskQueue });
    const handle = b.client.workflow.getHandle(workflowId);
    const state = ContainmentState.parse(await handle.result());
    if (state.position !== 'disabled') throw new Error(`the cost containment ended at ${state.position} (${state.status}), not disabled`);
    const history = await handle.fetchHistory();
    const floor = await b.client.workflow.start('engineFloor', { taskQueue: config.taskQueue, workflowId: 'floor-cost', args: ['cost'] });
    await floor.result();
    const byType: Record<string, number> = {};
    for (const e of history.events ?? []) {
      const type = (temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? 'unknown').replace(/^EVENT_TYPE_/, '').toLowerCase();
      byType[type] = (byType[type] ?? 0) + 1;
    }
    return {
      events: history.events?.length ?? 0,
      historyBytes: temporal.api.history.v1.History.encode(history).finish().length,
      byType,
      floorEvents: (await floor.fetchHistory()).events?.length ?? 0,
    };
  }, { policy: policyWith(timedLadder('200ms'), { retainFor: '1s' }) });
}

export interface ScaleResult {
  containments: number;
  inFlight: number;
  labShards: number;
  startSeconds: number;
  startErrors: number;
  /** Suppressed and waiting at the restrict approval gate. */
  parked: number;
  parkSeconds: number;
  /** The first worker process's RSS (all of them in worker*); older reports measured the bench's own process, which hosted the worker. */
  memory: { rssBefore: number; rssParked: number; mainHeapUsedBefore?: number; mainHeapUsedParked?: number; workerRssBefore?: number[]; workerRssParked?: number[] };
  maxCachedWorkflows: number;
  workflowHeapMb?: number;
  /** Worker processes beside the in-process worker, their RSS when all were parked, and the activities each ran. */
  extraWorkers: number;
  extraWorkerRss: number[];
  db: { bytes: number; walBytes: number };
  advanceSeconds: number;
  commandErrors: number;
  restricted: number;
  /** Containments that did not reach "restricted". */
  lost: number;
}

/** Gives up when the count has not moved for this long: what has not arrived by then is lost. */
const STALL_MS = 60_000;

async function waitForCount(b: Bench, query: string, target: number, phase: string): Promise<number> {
  let count = 0;
  let movedAt = Date.now();
  for (;;) {
    const now = (await b.client.workflow.count(query)).count;
    if (now !== count) movedAt = Date.now();
    count = now;
    b.progress.update(phase, count, target);
    if (count >= target || Date.now() - movedAt > STALL_MS) return count;
    await sleep(250);
  }
}

export const fileSize = (f: string) => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};

/** Resident memory of a process, from /proc (Linux); 0 when unknown. */
function rssOf(pid: number | undefined): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * N containments parked at an approval gate: the worker's memory and the server's database
 * with all of them open, then how long one "advance" each takes to move all N to restricted.
 */
export async function scale(b: Bench, n: number, inFlight = 64): Promise<ScaleResult> {
  const labShards = Math.ceil(n / 100);
  const labDir = join(b.root, 'scale-lab');
  const lab = new ShardedLab(labDir, labShards);
  const ids = range(n).map((i) => `bench-scale-${i}`);
  await lab.seed(Object.fromEntries(ids.map((id) => [id, labIdentity()])));
  // Every scale worker is a process of its own, as a host runs it: its RSS is the worker's alone,
  // not the benchmark's client and bookkeeping. Several of them share the task queue, policy,
  // sealing key (a command may reach any of them), issuer and lab, each with its own data folder.
  const dataDir = join(b.root, 'scale');
  mkdirSync(dataDir, { recursive: true });
  const policyFile = join(dataDir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(policyWith(approvalLadder())));
  const config: CordonConfig = { ...loadConfig({ CORDON_DATA_DIR: dataDir, ...b.issuer.env, CORDON_POLICY: policyFile }), taskQueue: 'bench-scale' };
  if (b.maxCachedWorkflows) config.maxCachedWorkflows = b.maxCachedWorkflows;
  await loadOrCreateSealKey(dataDir);
  const workers = Array.from({ length: 1 + b.extraWorkers }, (_, i) => {
    const name = `scale-worker-${i + 1}`;
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k))),
      ...b.issuer.env,
      TEMPORAL_ADDRESS: b.address,
      TEMPORAL_NAMESPACE: b.namespace,
      CORDON_DATA_DIR: join(b.root, name),
      CORDON_TASK_QUEUE: config.taskQueue,
      CORDON_POLICY: policyFile,
      CORDON_SEAL_KEY_FILE: sealKeyFiles(dataDir).privateFile,
      CORDON_METRICS_PORT: '0',
      CORDON_BENCH_LAB_DIR: labDir,
      CORDON_BENCH_LAB_SHARDS: String(labShards),
      CORDON_MAX_CACHED_WORKFLOWS: String(config.maxCachedWorkflows),
    };
    return new WorkerProcess(env, join(b.root, `${name}.log`), (t) => b.progress.note(`bench: ${t}`), name, join(__dirname, 'bench-worker.ts'));
  });
  try {
    await Promise.all(workers.map((w) => w.start()));
    return await parkAndAdvance(workers);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }

  async function parkAndAdvance(procs: WorkerProcess[]): Promise<ScaleResult> {
    const where = (condition: string) => `TaskQueue = "${config.taskQueue}" AND ${condition}`;
    await sleep(2000); // let each worker finish starting (bundle loaded, pollers up) before measuring its base
    const rssBefore = procs.map((w) => rssOf(w.pid));
    let started = 0;
    const t0 = performance.now();
    const startFailed = await mapLimit(ids, inFlight, async (id) => {
      try {
        await submitSignal(b.client, signal({ identityId: id }), { taskQueue: config.taskQueue });
        return false;
      } catch {
        return true;
      } finally {
        b.progress.update('scale: start', ++started, n);
      }
    });
    const startSeconds = (performance.now() - t0) / 1000;
    const parked = await waitForCount(b, where('CordonStage = "suppressed" AND CordonStatus = "active"'), n, 'scale: park at the gate');
    const parkSeconds = (performance.now() - t0) / 1000;
    const rssParked = procs.map((w) => rssOf(w.pid));
    const db = await b.dbSize();
    let sent = 0;
    const token = await b.issuer.token('bench-operator', ['responder']);
    const t1 = performance.now();
    const commandFailed = await mapLimit(ids, inFlight, async (id) => {
      try {
        await sendCommand(b.client, containmentWorkflowId({ provider: 'lab', identityId: id }), { type: 'advance', reason: 'scale phase' }, { token, sealKey: readSealPublicKey(config.dataDir) });
        return false;
      } catch {
        return true;
      } finally {
        b.progress.update('scale: advance', ++sent, n);
      }
    });
    const restricted = await waitForCount(b, where('CordonStage = "restricted"'), n, 'scale: reach restricted');
    return {
      containments: n,
      inFlight,
      labShards,
      startSeconds,
      startErrors: startFailed.filter(Boolean).length,
      parked,
      parkSeconds,
      memory: { rssBefore: rssBefore[0]!, rssParked: rssParked[0]!, workerRssBefore: rssBefore, workerRssParked: rssParked },
      maxCachedWorkflows: config.maxCachedWorkflows,
      workflowHeapMb: config.workflowHeapMb,
      extraWorkers: procs.length - 1,
      extraWorkerRss: rssParked.slice(1),
      db,
      advanceSeconds: (performance.now() - t1) / 1000,
      commandErrors: commandFailed.filter(Boolean).length,
      restricted,
      lost: n - restricted,
    };
  }
}
