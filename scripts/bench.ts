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
import { z } from 'zod';
import { startDevIssuer } from '../client/dev-issuer';
import { describeIssues } from '../workflows/schemas';
import { intake, type IntakeResult } from './bench-intake';
import { benchProviders } from './bench-providers';
import { attackerCutoff, realBenchProviders, type Cutoff } from './bench-real-providers';
import { engineFloor, evidenceFirst, ladderCost, scale, timeToSuppress, type Bench, type EvidenceComparison, type LadderCost, type Rate, type ScaleResult } from './bench-phases';
import { startDevServer } from './dev-server';
import { Progress, percentiles } from './measure';
import { resolveTemporalCli } from './temporal-cli';

const ROOT = resolve(__dirname, '..');

const Options = z.object({
  runs: z.coerce.number().int().min(1, 'runs is at least 1'),
  concurrency: z
    .string()
    .transform((v) => v.split(',').map((x) => Number(x.trim())))
    .pipe(z.array(z.number().int('concurrency levels are whole numbers').min(1, 'concurrency levels are at least 1')).min(1)),
  scale: z.coerce.number().int().min(1, 'scale is at least 1'),
  evidenceMs: z.coerce.number().int().min(0, 'evidence-ms is 0 or more'),
  skipScale: z.boolean().default(false),
  intake: z.coerce.number().int().min(10, 'intake is at least 10 requests').max(100_000),
  intakeConnections: z.coerce.number().int().min(1).max(512),
  skipIntake: z.boolean().default(false),
  onlyIntake: z.boolean().default(false),
  out: z.string().min(1),
});
type Options = z.infer<typeof Options>;

interface Report {
  startedAt: string;
  finishedAt: string;
  machine: ReturnType<typeof machineFacts>;
  options: Options;
  engineFloor: Rate[];
  timeToSuppress: Record<string, Rate[]>;
  attackerCutoff: Cutoff[];
  skippedProviders: string[];
  evidenceFirst: EvidenceComparison;
  cost: LadderCost;
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

function machineFacts(temporalCli: string) {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    totalMemoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    temporalCli: run(temporalCli, ['--version']),
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

function format(r: Report): string {
  const m = r.machine;
  const floorAt = new Map(r.engineFloor.map((f) => [f.concurrency, f]));
  const head = [
    `Cordon benchmark ${r.finishedAt}`,
    `${m.cores} cores (${m.cpu}), ${(m.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, Node ${m.node}, ${m.temporalCli}, SDK ${m.temporalSdk}, commit ${m.gitCommit.slice(0, 12)}${m.gitDirty ? ' (dirty)' : ''}`,
  ];
  const out = r.options.onlyIntake ? head : [
    ...head,
    '',
    'engine floor: start -> one no-op activity -> result (ms)',
    table(['concurrency', 'runs', 'p50', 'p95', 'p99', 'workflows/s'], r.engineFloor.map((f) => [f.concurrency, f.n, ms(f.p50), ms(f.p95), ms(f.p99), f.perSecond.toFixed(1)])),
    '',
    'time to suppress: signal accepted -> last suppression acknowledged by the provider (ms); throughput: first signal -> last suppression',
    table(
      ['provider', 'concurrency', 'runs', 'p50', 'p95', 'p99', 'containments/s', 'engine floor/s'],
      Object.entries(r.timeToSuppress).flatMap(([name, rates]) =>
        rates.map((t) => [name, t.concurrency, t.n, ms(t.p50), ms(t.p95), ms(t.p99), t.perSecond.toFixed(1), floorAt.get(t.concurrency)?.perSecond.toFixed(1) ?? '-']),
      ),
    ),
    ...(r.skippedProviders.length ? [`not measured: ${r.skippedProviders.join('; ')}`] : []),
    '',
    "attacker's live position: signal submitted -> the server closes its connection, or refuses its stolen token (Keycloak: refresh and introspection) (ms), one containment at a time",
    table(
      ['provider', 'runs', 'p50', 'p95', 'p99', 'ack p50', 'ack p95'],
      r.attackerCutoff.map((c) => [c.provider, c.n, ms(c.p50), ms(c.p95), ms(c.p99), ms(c.acknowledged.p50), ms(c.acknowledged.p95)]),
    ),
    '',
    `evidence first vs parallel (lab evidence delayed ${r.evidenceFirst.evidenceDelayMs} ms, ${r.evidenceFirst.concurrency} in flight): time to suppress (ms)`,
    table(
      ['path', 'runs', 'p50', 'p95', 'p99'],
      [
        ['parallel (Cordon)', r.evidenceFirst.parallel.n, ms(r.evidenceFirst.parallel.p50), ms(r.evidenceFirst.parallel.p95), ms(r.evidenceFirst.parallel.p99)],
        ['evidence first', r.evidenceFirst.evidenceFirst.n, ms(r.evidenceFirst.evidenceFirst.p50), ms(r.evidenceFirst.evidenceFirst.p95), ms(r.evidenceFirst.evidenceFirst.p99)],
      ],
    ),
    `ratio parallel/evidence-first: p50 ${r.evidenceFirst.ratio.p50.toFixed(3)}, p95 ${r.evidenceFirst.ratio.p95.toFixed(3)}`,
    '',
    `cost: ${r.cost.events} history events (${r.cost.historyBytes} bytes) per full timed ladder restrict -> rotate -> disable; engine floor ${r.cost.floorEvents} events`,
  ];
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
    out.push(
      '',
      `scale: ${s.containments} containments parked at an approval gate (${s.inFlight} in flight, lab in ${s.labShards} shards)`,
      table(
        ['measure', 'value'],
        [
          ['started', `${s.containments - s.startErrors} in ${s.startSeconds.toFixed(1)} s (${s.startErrors} failed)`],
          ['parked at the gate', `${s.parked} after ${s.parkSeconds.toFixed(1)} s`],
          ['worker RSS', `${mib(s.memory.rssBefore)} -> ${mib(s.memory.rssParked)} (workflow cache holds at most ${s.maxCachedWorkflows})`],
          ['main-thread heap', `${mib(s.memory.mainHeapUsedBefore)} -> ${mib(s.memory.mainHeapUsedParked)} (workflows run in worker threads: counted in RSS)`],
          ['server SQLite', `${mib(s.db.bytes)} + WAL ${mib(s.db.walBytes)}`],
          ['advance all', `${s.restricted} restricted ${s.advanceSeconds.toFixed(1)} s after the first advance (${s.commandErrors} commands failed)`],
          ['lost', String(s.lost)],
        ],
      ),
    );
  }
  return out.join('\n');
}

// ---- main ---------------------------------------------------------------------------------------
async function main(argv: string[]): Promise<number> {
  const program = new Command('bench')
    .description('time-to-suppress benchmark on a private dev server')
    .option('--runs <n>', 'measured runs per level', '200')
    .option('--concurrency <list>', 'comma-separated levels of work in flight', '1,8,32')
    .option('--scale <n>', 'containments parked at an approval gate', '10000')
    .option('--evidence-ms <ms>', 'lab evidence delay for the evidence-first comparison', '2000')
    .option('--skip-scale', 'skip the scale phase')
    .option('--intake <n>', 'signals posted to the HTTP API in the intake phase', '300')
    .option('--intake-connections <n>', 'HTTP connections of the intake load generator', '16')
    .option('--skip-intake', 'skip the intake phase')
    .option('--only-intake', 'run only the intake phase')
    .option('--out <dir>', 'where the JSON reports go', '.cordon/results')
    .parse(argv, { from: 'user' });
  const parsed = Options.safeParse(program.opts());
  if (!parsed.success) {
    console.error(`bench: invalid options: ${describeIssues(parsed.error)}`);
    return 2;
  }
  const o = parsed.data;
  const cli = await resolveTemporalCli();
  if (!cli.path) throw new Error('no temporal CLI: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or install Go >= 1.25 (see README)');

  const root = mkdtempSync(join(tmpdir(), 'cordon-bench-'));
  const cleanup = () => rmSync(root, { recursive: true, force: true });
  // Ctrl-C reaches the dev server too (same process group); only the temporary folder is left.
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  const progress = new Progress();
  const startedAt = new Date().toISOString();
  const dbFile = join(root, 'temporal.db');
  const server = await startDevServer({ cli: cli.path, dbFile, headless: true, logLevel: 'error' });
  let report: Report;
  try {
    const connection = await NativeConnection.connect({ address: server.address });
    const client = new Client({ connection: await Connection.connect({ address: server.address }) });
    try {
      const issuer = await startDevIssuer(join(root, 'issuer'));
      const b: Bench = { client, connection, namespace: 'default', root, dbFile, progress, issuer };
      process.once('exit', () => void issuer.close());
      if (o.onlyIntake) {
        const intakeResult = await intake(b, { requests: o.intake, connections: o.intakeConnections });
        progress.end();
        const none = percentiles([]);
        const empty: EvidenceComparison = { evidenceDelayMs: 0, concurrency: 0, parallel: none, evidenceFirst: none, ratio: { p50: NaN, p95: NaN } };
        report = { startedAt, finishedAt: new Date().toISOString(), machine: machineFacts(cli.path), options: o, engineFloor: [], timeToSuppress: {}, attackerCutoff: [], skippedProviders: [], evidenceFirst: empty, cost: { events: 0, historyBytes: 0, byType: {}, floorEvents: 0 }, intake: intakeResult };
      } else {
        const floor = await engineFloor(b, o.concurrency, o.runs);
        const tts: Record<string, Rate[]> = {};
        for (const p of benchProviders()) tts[p.name] = await timeToSuppress(b, p, o.concurrency, o.runs);
        const real = await realBenchProviders();
        const cutoffs: Cutoff[] = [];
        try {
          for (const p of real.providers) {
            tts[p.name] = await timeToSuppress(b, p, o.concurrency, o.runs);
            cutoffs.push(await attackerCutoff(b, p, Math.min(o.runs, 50)));
          }
        } finally {
          await real.stop();
        }
        const evidence = await evidenceFirst(b, o.runs, o.evidenceMs);
        const cost = await ladderCost(b);
        const intakeResult = o.skipIntake ? undefined : await intake(b, { requests: o.intake, connections: o.intakeConnections });
        const scaled = o.skipScale ? undefined : await scale(b, o.scale);
        progress.end();
        report = { startedAt, finishedAt: new Date().toISOString(), machine: machineFacts(cli.path), options: o, engineFloor: floor, timeToSuppress: tts, attackerCutoff: cutoffs, skippedProviders: real.skipped, evidenceFirst: evidence, cost, scale: scaled, intake: intakeResult };
      }
    } finally {
      progress.end();
      await client.connection.close();
      await connection.close();
    }
  } finally {
    await server.stop();
    cleanup();
  }

  const outDir = resolve(o.out);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `bench-${report.finishedAt.replace(/[:.]/g, '-')}.json`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, json);
  writeFileSync(join(outDir, 'bench-latest.json'), json);
  console.log(format(report));
  console.error(`bench: wrote ${file} and bench-latest.json`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
