// `npm run bench`: how fast Cordon cuts access, against what the engine itself costs. Starts its
// own dev server (a fresh SQLite file) and an in-process worker, measures every phase, prints a
// table on stdout and writes JSON with the machine's facts to <out>/bench-<time>.json.
import '../test/quiet-runtime'; // the SDK runtime must exist before the first connection
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { Client as PgClient } from 'pg';
import { z } from 'zod';
import { startDevIssuer } from '../client/dev-issuer';
import { describeIssues } from '../workflows/schemas';
import { benchProviders } from './bench-providers';
import { attackerCutoff, realBenchProviders, type Cutoff } from './bench-real-providers';
import { intake, type IntakeResult } from './bench-intake';
import { coldStart, type ColdStart } from './bench-cold';
import { ceiling, cpuTotal, engineFloor, evidenceFirst, fileSize, ladderCost, scale, timeToSuppress, type Bench, type EvidenceComparison, type LadderCost, type Rate, type ScaleResult } from './bench-phases';
import { sqlitePragmasWith, startDevServer } from './dev-server';
import { ENGINE_TUNING } from './engine-tuning';
import { Progress } from './measure';
import { resolveTemporalCli } from './temporal-cli';
import { resolveTemporalServer } from './temporal-server';
import { startCluster } from './cluster-core';

const ROOT = resolve(__dirname, '..');
const PHASES = ['floor', 'tts', 'cold', 'cutoff', 'evidence', 'cost', 'intake', 'scale'] as const;

const Options = z.object({
  runs: z.coerce.number().int().min(1, 'runs is at least 1'),
  concurrency: z
    .string()
    .transform((v) => v.split(',').map((x) => Number(x.trim())))
    .pipe(z.array(z.number().int('concurrency levels are whole numbers').min(1, 'concurrency levels are at least 1')).min(1)),
  scale: z.coerce.number().int().min(1, 'scale is at least 1'),
  coldRuns: z.coerce.number().int().min(1, 'cold-runs is at least 1'),
  coldIdle: z.coerce.number().min(0, 'cold-idle is 0 or more seconds'),
  evidenceMs: z.coerce.number().int().min(0, 'evidence-ms is 0 or more'),
  skipScale: z.boolean().default(false),
  intake: z.coerce.number().int().min(10, 'intake is at least 10 requests').max(100_000),
  intakeConnections: z.coerce.number().int().min(1).max(512),
  skipIntake: z.boolean().default(false),
  out: z.string().min(1),
  engine: z.enum(['dev', 'cluster']),
  workers: z.coerce.number().int().min(1).max(8).optional(),
  shards: z.coerce.number().int().min(1).max(16384),
  dynamicConfig: z.array(z.string().regex(/^[A-Za-z0-9_.]+=.+$/, 'dynamic config values are key=value')).default([]),
  sqlitePragma: z.array(z.string().regex(/^[a-z_]+=[A-Za-z0-9_]+$/, 'sqlite pragmas are name=value (letters, digits, _)')).default([]),
  phases: z
    .string()
    .transform((v) => v.split(',').map((x) => x.trim()))
    .pipe(z.array(z.enum(PHASES)).min(1)),
  compare: z.boolean().default(false),
  providers: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(',').map((x) => x.trim()) : undefined))
    .pipe(z.array(z.enum(['lab', 'postgres', 'redis', 'keycloak-user', 'keycloak-client'])).min(1).optional()),
  maxCached: z.coerce.number().int().min(1).optional(),
  dev: z.string().min(1).optional(),
  cluster: z.string().min(1).optional(),
});
type Options = z.infer<typeof Options>;

interface EngineFacts {
  kind: 'dev' | 'cluster';
  /** The Temporal server's version as it reports it (the CLI's for the dev server). */
  version: string;
  startedInMs: number;
  /** Worker processes in the scale phase (the other phases run one in-process worker). */
  scaleWorkers: number;
  shards?: number;
  dynamicConfig?: Record<string, unknown>;
  /** The dev server's SQLite pragmas (absent in reports from before they were set: SQLite's defaults). */
  sqlitePragmas?: Record<string, string>;
}

interface Report {
  startedAt: string;
  finishedAt: string;
  machine: ReturnType<typeof machineFacts>;
  engine: EngineFacts;
  options: Options;
  engineFloor: Rate[];
  timeToSuppress: Record<string, Rate[]>;
  attackerCutoff: Cutoff[];
  coldStart?: ColdStart[];
  skippedProviders: string[];
  evidenceFirst?: EvidenceComparison;
  cost?: LadderCost;
  scale?: ScaleResult;
  intake?: IntakeResult;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function machineFacts(temporalBinary: string) {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    totalMemoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    temporalCli: run(temporalBinary, ['--version']),
    temporalSdk: (JSON.parse(readFileSync(require.resolve('@temporalio/client/package.json'), 'utf8')) as { version: string }).version,
    gitCommit: run('git', ['rev-parse', 'HEAD']),
    gitDirty: run('git', ['status', '--porcelain']) !== '',
  };
}

// ---- output -------------------------------------------------------------------------------------
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function engineLine(e: EngineFacts): string {
  const dc = Object.entries(e.dynamicConfig ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
  const pragmas = Object.entries(e.sqlitePragmas ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
  if (e.kind === 'dev') return `engine: dev server (SQLite${pragmas ? `, ${pragmas}` : ''}), ${e.version}, up in ${e.startedInMs} ms; dynamic config ${dc || 'none (before the tuning)'}`;
  return `engine: cluster (Temporal server on PostgreSQL, ${e.shards} history shards), ${e.version}, up in ${e.startedInMs} ms; scale phase on ${e.scaleWorkers} worker(s); dynamic config ${dc}`;
}

function format(r: Report): string {
  const m = r.machine;
  const floorAt = new Map(r.engineFloor.map((f) => [f.concurrency, f]));
  const out = [
    `Cordon benchmark ${r.finishedAt}`,
    `${m.cores} cores (${m.cpu}), ${(m.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, Node ${m.node}, ${m.temporalCli}, SDK ${m.temporalSdk}, commit ${m.gitCommit.slice(0, 12)}${m.gitDirty ? ' (dirty)' : ''}`,
    engineLine(r.engine ?? { kind: 'dev', version: m.temporalCli, startedInMs: NaN, scaleWorkers: 1 }),
  ];
  if (r.engineFloor.length) {
    out.push('', 'engine floor: client request -> its one no-op activity ran (ms); each client moves on then, as for suppression', table(['concurrency', 'runs', 'p50', 'p95', 'p99', 'workflows/s'], r.engineFloor.map((f) => [f.concurrency, f.n, ms(f.p50), ms(f.p95), ms(f.p99), f.perSecond.toFixed(1)])));
  }
  if (Object.keys(r.timeToSuppress).length) {
    const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : '-');
    out.push(
      '',
      'time to suppress: client request -> last suppression acknowledged by the provider (ms); throughput: first request -> last acknowledgement (both as the floor is measured)',
      'ratios against the engine floor measured beside each row (half its runs just before, half just after), same concurrency and runs (its p99 and rate shown); [*] against the floor table above',
      table(
        ['provider', 'concurrency', 'runs', 'p50', 'p95', 'p99', 'accepted p50', 'containments/s', 'floor p99', 'engine floor/s', 'throughput / floor', 'p99 / floor p99'],
        Object.entries(r.timeToSuppress).flatMap(([name, rates]) =>
          rates.map((t) => {
            const f = t.floor ?? floorAt.get(t.concurrency);
            const mark = t.floor || !f ? '' : ' [*]';
            return [name, t.concurrency, t.n, ms(t.p50), ms(t.p95), ms(t.p99), t.accepted ? ms(t.accepted.p50) : '-', t.perSecond.toFixed(1), f ? ms(f.p99) : '-', f?.perSecond.toFixed(1) ?? '-', ratio(t.perSecond, f?.perSecond) + mark, ratio(t.p99, f?.p99) + mark];
          }),
        ),
      ),
      ...(r.skippedProviders.length ? [`not measured: ${r.skippedProviders.join('; ')}`] : []),
    );
    // Reports written before these two parts were measured have none.
    const parts = Object.entries(r.timeToSuppress).flatMap(([name, rates]) => rates.flatMap((t) => (t.called && t.inProvider ? [[name, t.concurrency, ms(t.p50), ms(t.p99), ms(t.called.p50), ms(t.called.p99), ms(t.inProvider.p50), ms(t.inProvider.p99)]] : [])));
    if (parts.length) {
      out.push(
        '',
        "where time to suppress goes (ms): client request -> the worker's first suppression call began (the engine and the worker), and that call -> the last acknowledgement (the provider, and any wait for the worker's event loop)",
        table(['provider', 'concurrency', 'p50', 'p99', 'to first call p50', 'to first call p99', 'in provider p50', 'in provider p99'], parts),
      );
    }
    // Each row, after the floor measured beside it: where the box's CPU went per run.
    const rows = Object.entries(r.timeToSuppress).flatMap(([name, rates]) => rates.flatMap((t): [string, Rate][] => [...(t.floor ? [['  its floor', t.floor] as [string, Rate]] : []), [name, t]]));
    if (rows.some(([, t]) => t.cpuMs)) {
      const ms1 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
      out.push(
        '',
        "where the cores went: CPU ms per run during each burst, by process name on this host (bench: this process, i.e. Cordon's worker, or the floor's, and the client; others: the providers' servers, and on the cluster the server's own PostgreSQL as postgres); busy: cores in use",
        "ceiling: the most a row's throughput / floor could be on these cores if Cordon cost nothing beyond the floor's own engine and bench process, with its provider's servers costing what they did (all cores busy)",
        table(
          ['run', 'concurrency', 'engine', 'bench', 'others', 'total', 'busy', 'ceiling'],
          rows.map(([name, t]) => {
            const cpu = t.cpuMs ?? {};
            const others = Object.entries(cpu).filter(([k, v]) => k !== 'engine' && k !== 'bench' && v > 0);
            const total = cpuTotal(cpu);
            const limit = t.floor ? ceiling(m.cores, t, t.floor) : undefined;
            return [name, t.concurrency, ms1(cpu.engine), ms1(cpu.bench), others.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ') || '-', ms1(total), ((total * t.perSecond) / 1000).toFixed(2), limit === undefined ? '' : limit.toFixed(2)];
          }),
        ),
      );
    }
    // Whether a JVM's JIT had settled before the first timed level: its CPU per run, chunk by chunk.
    for (const [name, rates] of Object.entries(r.timeToSuppress)) {
      const w = rates.find((t) => t.warmUp)?.warmUp;
      if (!w?.cpuMs.length) continue;
      const kinds = [...new Set(w.cpuMs.flatMap((c) => Object.keys(c)))].filter((k) => w.cpuMs.some((c) => (c[k] ?? 0) >= 1));
      out.push(`${name} warm-up: ${w.runs} untimed containments, 8 in flight; CPU ms per run by ${w.chunk}: ${kinds.map((k) => `${k} ${w.cpuMs.map((c) => Math.round(c[k] ?? 0)).join(' ')}`).join('; ')}`);
    }
  }
  if (r.attackerCutoff.length) {
    out.push(
      '',
      "attacker's live position (ms from the signal, one containment at a time): its held connection or token cut (p50..p99), the provider's acknowledgement, and its last command that worked while it kept retrying every 10 ms and reconnecting with the stolen secret",
      table(
        ['provider', 'runs', 'cut p50', 'cut p95', 'cut p99', 'ack p50', 'ack p95', 'last ok p50', 'last ok p95', 'still in 5 s on'],
        r.attackerCutoff.map((c) => [c.provider, c.n, ms(c.p50), ms(c.p95), ms(c.p99), ms(c.acknowledged.p50), ms(c.acknowledged.p95), c.lastSuccess ? ms(c.lastSuccess.p50) : '-', c.lastSuccess ? ms(c.lastSuccess.p95) : '-', c.stillIn ?? '-']),
      ),
    );
  }
  const e = r.evidenceFirst;
  if (e) {
    out.push(
      '',
      `evidence first vs parallel (lab evidence delayed ${e.evidenceDelayMs} ms, ${e.concurrency} in flight): time to suppress (ms)`,
      table(
        ['path', 'runs', 'p50', 'p95', 'p99'],
        [
          ['parallel (Cordon)', e.parallel.n, ms(e.parallel.p50), ms(e.parallel.p95), ms(e.parallel.p99)],
          ['evidence first', e.evidenceFirst.n, ms(e.evidenceFirst.p50), ms(e.evidenceFirst.p95), ms(e.evidenceFirst.p99)],
        ],
      ),
      `ratio parallel/evidence-first: p50 ${e.ratio.p50.toFixed(3)}, p95 ${e.ratio.p95.toFixed(3)}` +
        (e.evidenceObserved ? `; evidence capture observed (scheduled -> completed): p50 ${ms(e.evidenceObserved.p50)}, p95 ${ms(e.evidenceObserved.p95)}` : ''),
    );
  }
  if (r.coldStart?.length) {
    const warm = (p: string) => r.timeToSuppress[p]?.find((t) => t.concurrency === 1)?.p50;
    out.push(
      '',
      `cold time to suppress: a fresh worker process idle for ${r.coldStart[0]!.idleSeconds} s, then one signal (ms), against the warm p50 at 1 in flight`,
      table(
        ['provider', 'runs', 'p50', 'max', 'warm p50', 'cold p50 / warm p50'],
        r.coldStart.map((c) => [c.provider, c.n, ms(c.p50), ms(c.max), ms(warm(c.provider) ?? NaN), warm(c.provider) ? (c.p50 / warm(c.provider)!).toFixed(2) : '-']),
      ),
    );
  }
  if (r.cost) out.push('', `cost: ${r.cost.events} history events (${r.cost.historyBytes} bytes) per full timed ladder restrict -> rotate -> disable; engine floor ${r.cost.floorEvents} events`);
  const i = r.intake;
  if (i) {
    out.push(
      '',
      `intake: ${i.requests} POST /v1/signals over HTTP on loopback (autocannon, ${i.connections} connections) for ${i.identities} identities, with repeats and duplicates`,
      table(
        ['measure', 'value'],
        [
          ['accepted', `${i.accepted} in ${i.seconds.toFixed(1)} s: ${i.acceptedPerSecond.toFixed(1)}/s (${i.errors} errors)`],
          ['HTTP request -> 202 (ms)', `p50 ${ms(i.http.p50)}, p99 ${ms(i.http.p99)}, max ${ms(i.http.max)}`],
          ['HTTP accept -> suppression acknowledged (ms)', `p50 ${ms(i.acceptToSuppressed.p50)}, p99 ${ms(i.acceptToSuppressed.p99)} (n ${i.acceptToSuppressed.n})`],
          ['duplicates folded', `${i.duplicatesSent} sent again with a seen signalId: changed nothing`],
          ['joins', `${i.joinsSent} further signals joined running containments`],
          ['containments started', String(i.containmentsStarted)],
          ['lost', String(i.lost)],
        ],
      ),
    );
  }
  const s = r.scale;
  if (s) {
    const cluster = r.engine?.kind === 'cluster';
    out.push(
      '',
      `scale: ${s.containments} containments parked at an approval gate (${s.inFlight} in flight, lab in ${s.labShards} shards, ${1 + (s.extraWorkers ?? 0)} worker(s))`,
      table(
        ['measure', 'value'],
        [
          ['started', `${s.containments - s.startErrors} in ${s.startSeconds.toFixed(1)} s (${s.startErrors} failed)`],
          ['parked at the gate', `${s.parked} after ${s.parkSeconds.toFixed(1)} s`],
          [
            'worker RSS',
            s.memory.workerRssParked
              ? `${s.memory.workerRssBefore!.map(mib).join(' + ')} -> ${s.memory.workerRssParked.map(mib).join(' + ')} (worker process${s.memory.workerRssParked.length > 1 ? 'es' : ''}; workflow cache at most ${s.maxCachedWorkflows}, workflow heap ${s.workflowHeapMb} MiB)`
              : `${mib(s.memory.rssBefore)} -> ${mib(s.memory.rssParked)} (the bench process hosting the worker; workflow cache at most ${s.maxCachedWorkflows})${s.extraWorkerRss?.length ? `; other workers ${s.extraWorkerRss.map(mib).join(', ')}` : ''}`,
          ],
          cluster ? ['server PostgreSQL', `${mib(s.db.bytes)} (temporal + temporal_visibility)`] : ['server SQLite', `${mib(s.db.bytes)} + WAL ${mib(s.db.walBytes)}`],
          ['advance all', `${s.restricted} restricted ${s.advanceSeconds.toFixed(1)} s after the first advance (${s.commandErrors} commands failed)`],
          ['lost', String(s.lost)],
        ],
      ),
    );
  }
  return out.join('\n');
}

/** The latest dev-server and cluster reports side by side (`npm run bench -- --compare`). */
function compare(dev: Report, cluster: Report): string {
  const rows: Array<[string, string, string]> = [];
  const both = (label: string, f: (r: Report) => string | undefined) => {
    const a = f(dev);
    const b = f(cluster);
    if (a !== undefined || b !== undefined) rows.push([label, a ?? '-', b ?? '-']);
  };
  const rate = (list: Rate[], c: number) => list.find((x) => x.concurrency === c);
  const levels = [...new Set([...dev.engineFloor, ...cluster.engineFloor].map((f) => f.concurrency))].sort((x, y) => x - y);
  for (const c of levels) both(`engine floor, ${c} in flight: p50 ms / workflows/s`, (r) => (rate(r.engineFloor, c) ? `${ms(rate(r.engineFloor, c)!.p50)} / ${rate(r.engineFloor, c)!.perSecond.toFixed(1)}` : undefined));
  const providers = [...new Set([...Object.keys(dev.timeToSuppress), ...Object.keys(cluster.timeToSuppress)])];
  for (const p of providers) {
    for (const c of levels) both(`time to suppress (${p}), ${c} in flight: p50 / p95 ms, containments/s`, (r) => {
      const t = rate(r.timeToSuppress[p] ?? [], c);
      return t && `${ms(t.p50)} / ${ms(t.p95)}, ${t.perSecond.toFixed(1)}`;
    });
  }
  both('evidence first vs parallel: parallel p50 ms', (r) => r.evidenceFirst && ms(r.evidenceFirst.parallel.p50));
  both('history events per full ladder', (r) => r.cost && String(r.cost.events));
  both('scale: containments (workers)', (r) => r.scale && `${r.scale.containments} (${1 + (r.scale.extraWorkers ?? 0)})`);
  both('scale: started, containments/s', (r) => r.scale && ((r.scale.containments - r.scale.startErrors) / r.scale.startSeconds).toFixed(1));
  both('scale: all parked at the gate after, s', (r) => r.scale && `${r.scale.parkSeconds.toFixed(0)} (${r.scale.parked} parked)`);
  both('scale: parked per second', (r) => r.scale && (r.scale.parked / r.scale.parkSeconds).toFixed(1));
  both('scale: advance all to restricted, s', (r) => r.scale && `${r.scale.advanceSeconds.toFixed(0)} (${r.scale.restricted} restricted)`);
  both('scale: lost', (r) => r.scale && String(r.scale.lost));
  both('scale: worker RSS parked', (r) => r.scale && [r.scale.memory.rssParked, ...(r.scale.extraWorkerRss ?? [])].map(mib).join(' + '));
  both('scale: server database', (r) => r.scale && mib(r.scale.db.bytes + r.scale.db.walBytes));
  const head = (r: Report) => `${r.engine?.kind === 'cluster' ? 'cluster' : 'dev server'} (${r.finishedAt.slice(0, 16)}, ${r.machine.gitCommit.slice(0, 8)})`;
  return [engineLine(dev.engine), engineLine(cluster.engine), '', table(['measure', head(dev), head(cluster)], rows)].join('\n');
}

// ---- main ---------------------------------------------------------------------------------------
/** key=value with a JSON value when it parses as one (true, 4, "x"), a string otherwise. */
function parseDynamicConfig(list: string[]): Record<string, unknown> {
  return Object.fromEntries(
    list.map((kv) => {
      const raw = kv.slice(kv.indexOf('=') + 1);
      let value: unknown = raw;
      try {
        value = JSON.parse(raw);
      } catch {
        // a plain string
      }
      return [kv.slice(0, kv.indexOf('=')), value];
    }),
  );
}

interface RunningEngine {
  address: string;
  facts: EngineFacts;
  binary: string;
  dbSize(): Promise<{ bytes: number; walBytes: number }>;
  stop(): Promise<void>;
}

async function startEngine(o: Options, root: string): Promise<RunningEngine> {
  const scaleWorkers = o.workers ?? (o.engine === 'cluster' ? 2 : 1);
  if (o.engine === 'cluster') {
    const binaries = await resolveTemporalServer();
    const cluster = await startCluster({ binaries, dir: join(root, 'cluster'), shards: o.shards, dynamicConfig: parseDynamicConfig(o.dynamicConfig) });
    return {
      address: cluster.address,
      binary: binaries.server,
      facts: { kind: 'cluster', version: run(binaries.server, ['--version']), startedInMs: cluster.timings.totalMs, scaleWorkers, shards: cluster.shards, dynamicConfig: cluster.dynamicConfig },
      dbSize: async () => {
        const c = new PgClient({ connectionString: cluster.postgres!.setupUrl });
        await c.connect();
        try {
          const { rows } = await c.query<{ bytes: string }>(`SELECT sum(pg_database_size(datname))::text AS bytes FROM pg_database WHERE datname IN ('temporal', 'temporal_visibility')`);
          return { bytes: Number(rows[0]!.bytes), walBytes: 0 };
        } finally {
          await c.end();
        }
      },
      stop: () => cluster.stop(),
    };
  }
  const cli = await resolveTemporalCli();
  if (!cli.path) throw new Error('no temporal CLI: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or install Go >= 1.25 (see README)');
  const dbFile = join(root, 'temporal.db');
  const extra = parseDynamicConfig(o.dynamicConfig) as Record<string, string | number | boolean | null>;
  // name=null drops one of the defaults (both null: SQLite's own, the journal before the WAL).
  const pragmas = Object.fromEntries(o.sqlitePragma.map((kv) => kv.split('=') as [string, string]).map(([k, v]) => [k, v === 'null' ? null : v]));
  const server = await startDevServer({ cli: cli.path, dbFile, headless: true, logLevel: 'error', dynamicConfig: extra, sqlitePragmas: pragmas });
  return {
    address: server.address,
    binary: cli.path,
    facts: { kind: 'dev', version: run(cli.path, ['--version']), startedInMs: server.startedInMs, scaleWorkers, dynamicConfig: Object.fromEntries(Object.entries({ ...ENGINE_TUNING, ...extra }).filter(([, v]) => v !== null)), sqlitePragmas: sqlitePragmasWith(pragmas) },
    dbSize: async () => ({ bytes: fileSize(dbFile), walBytes: fileSize(`${dbFile}-wal`) }),
    stop: () => server.stop(),
  };
}

/** Several runs of one engine as one report: a phase the first run lacks comes from a later one (a long scale run apart). */
function mergeReports(reports: Report[]): Report {
  const [first, ...rest] = reports;
  const out: Report = { ...first! };
  for (const r of rest) {
    if (!out.engineFloor.length) out.engineFloor = r.engineFloor;
    if (!Object.keys(out.timeToSuppress).length) out.timeToSuppress = r.timeToSuppress;
    if (!out.attackerCutoff.length) out.attackerCutoff = r.attackerCutoff;
    out.evidenceFirst ??= r.evidenceFirst;
    out.cost ??= r.cost;
    out.scale ??= r.scale;
  }
  return out;
}

function readReport(file: string): Report {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Report;
  } catch {
    throw new Error(`no report at ${file}: run \`npm run bench\` and \`npm run bench -- --engine cluster\` first`);
  }
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('bench')
    .description('time-to-suppress benchmark on a private dev server or cluster')
    .option('--engine <dev|cluster>', 'the dev server (SQLite) or the cluster (Temporal server on PostgreSQL)', 'dev')
    .option('--runs <n>', 'measured runs per level', '200')
    .option('--concurrency <list>', 'comma-separated levels of work in flight', '1,8,32')
    .option('--scale <n>', 'containments parked at an approval gate', '10000')
    .option('--cold-runs <n>', 'fresh worker processes per provider in the cold phase', '3')
    .option('--cold-idle <s>', 'seconds each fresh worker sits idle before its signal', '10')
    .option('--workers <n>', 'worker processes in the scale phase (default: 2 on the cluster, 1 on the dev server)')
    .option('--max-cached <n>', "the scale phase's workers keep at most n workflows in memory (default: the worker's, CORDON_MAX_CACHED_WORKFLOWS)")
    .option('--shards <n>', 'cluster: history shards', '4')
    .option('--dynamic-config <key=value>', 'a server dynamic config value (repeatable; null removes a tuned one)', (v: string, all: string[]) => [...all, v], [])
    .option('--sqlite-pragma <name=value>', 'dev server: a SQLite pragma on top of the defaults (repeatable; null drops one)', (v: string, all: string[]) => [...all, v], [])
    .option('--evidence-ms <ms>', 'lab evidence delay for the evidence-first comparison', '2000')
    .option('--phases <list>', `comma-separated phases to run (${PHASES.join(',')})`, PHASES.join(','))
    .option('--skip-scale', 'skip the scale phase')
    .option('--intake <n>', 'signals posted to the HTTP API in the intake phase', '300')
    .option('--intake-connections <n>', 'HTTP connections of the intake load generator', '16')
    .option('--skip-intake', 'skip the intake phase')
    .option('--compare', 'print the latest dev server and cluster reports side by side, and exit')
    .option('--dev <files>', 'with --compare: the dev server report(s) instead of the latest (comma-separated; later files fill phases the first lacks)')
    .option('--cluster <files>', 'with --compare: the cluster report(s) instead of the latest')
    .option('--providers <list>', 'providers to measure (lab,postgres,redis,keycloak-user,keycloak-client; default all installed)')
    .option('--out <dir>', 'where the JSON reports go', '.cordon/results')
    .parse(argv, { from: 'user' });
  const parsed = Options.safeParse(program.opts());
  if (!parsed.success) {
    console.error(`bench: invalid options: ${describeIssues(parsed.error)}`);
    return 2;
  }
  const o = parsed.data;
  const outDir = resolve(o.out);
  if (o.compare) {
    const side = (files: string | undefined, engine: string) => mergeReports((files ?? join(outDir, `bench-latest-${engine}.json`)).split(',').map((f) => readReport(resolve(f))));
    console.log(compare(side(o.dev, 'dev'), side(o.cluster, 'cluster')));
    return 0;
  }
  const phases = new Set(o.phases.filter((p) => (p !== 'scale' || !o.skipScale) && (p !== 'intake' || !o.skipIntake)));

  const root = mkdtempSync(join(tmpdir(), 'cordon-bench-'));
  const cleanup = () => rmSync(root, { recursive: true, force: true });
  // Ctrl-C: the dev server shares our process group; the cluster's server and PostgreSQL are
  // killed by startCluster's exit hook. Only the temporary folder is left to remove.
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  const progress = new Progress();
  const startedAt = new Date().toISOString();
  const engine = await startEngine(o, root);
  progress.note(`bench: ${engineLine(engine.facts)}`);
  let report: Report;
  try {
    const connection = await NativeConnection.connect({ address: engine.address });
    const client = new Client({ connection: await Connection.connect({ address: engine.address }) });
    try {
      const issuer = await startDevIssuer(join(root, 'issuer'));
      const b: Bench = { client, connection, namespace: 'default', root, address: engine.address, engine: o.engine, dbSize: engine.dbSize, extraWorkers: engine.facts.scaleWorkers - 1, maxCachedWorkflows: o.maxCached, progress, issuer };
      process.once('exit', () => void issuer.close());
      const floor = phases.has('floor') ? await engineFloor(b, o.concurrency, o.runs) : [];
      const tts: Record<string, Rate[]> = {};
      const cutoffs: Cutoff[] = [];
      const cold: ColdStart[] = [];
      let skipped: string[] = [];
      const wanted = (name: string) => !o.providers || o.providers.includes(name as never);
      for (const p of benchProviders().filter((x) => wanted(x.name))) {
        if (phases.has('tts')) tts[p.name] = await timeToSuppress(b, p, o.concurrency, o.runs, { pairFloor: phases.has('floor') });
        if (phases.has('cold')) cold.push(await coldStart(b, p, o.coldRuns, o.coldIdle));
      }
      if (phases.has('tts') || phases.has('cutoff') || phases.has('cold')) {
        const real = await realBenchProviders(wanted);
        skipped = real.skipped;
        try {
          for (const p of real.providers) {
            if (phases.has('tts')) tts[p.name] = await timeToSuppress(b, p, o.concurrency, o.runs, { pairFloor: phases.has('floor') });
            if (phases.has('cold')) cold.push(await coldStart(b, p, o.coldRuns, o.coldIdle));
            if (phases.has('cutoff')) cutoffs.push(await attackerCutoff(b, p, Math.min(o.runs, 20)));
          }
        } finally {
          await real.stop();
        }
      }
      const evidence = phases.has('evidence') ? await evidenceFirst(b, o.runs, o.evidenceMs) : undefined;
      const cost = phases.has('cost') ? await ladderCost(b) : undefined;
      const intakeResult = phases.has('intake') ? await intake(b, { requests: o.intake, connections: o.intakeConnections }) : undefined;
      const scaled = phases.has('scale') ? await scale(b, o.scale) : undefined;
      progress.end();
      report = { startedAt, finishedAt: new Date().toISOString(), machine: machineFacts(engine.binary), engine: engine.facts, options: o, engineFloor: floor, timeToSuppress: tts, attackerCutoff: cutoffs, coldStart: cold, skippedProviders: skipped, evidenceFirst: evidence, cost, scale: scaled, intake: intakeResult };
    } finally {
      progress.end();
      await client.connection.close();
      await connection.close();
    }
  } finally {
    await engine.stop();
    cleanup();
  }

  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `bench-${o.engine}-${report.finishedAt.replace(/[:.]/g, '-')}.json`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, json);
  writeFileSync(join(outDir, 'bench-latest.json'), json);
  writeFileSync(join(outDir, `bench-latest-${o.engine}.json`), json); // what --compare reads
  console.log(format(report));
  console.error(`bench: wrote ${file}, bench-latest.json and bench-latest-${o.engine}.json`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
