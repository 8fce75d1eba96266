// `npm run drill`: the fault drill (scripts/drill-core.ts) with its counts printed; exits 1 when a
// containment was lost or a mutation applied twice, 2 on bad options.
import { Command } from 'commander';
import { z } from 'zod';
import { describeIssues } from '../workflows/schemas';
import { CLUSTER_DRILL, DEFAULT_DRILL, SMALL_DRILL, runDrill, type DrillReport } from './drill-core';
import { Progress } from './measure';

const Options = z.object({
  small: z.boolean().default(false),
  engine: z.enum(['dev', 'cluster']).default('dev'),
  workers: z.coerce.number().int().min(1).max(8).optional(),
  dbOutages: z.coerce.number().int().min(0).optional(),
  dbOutageS: z.coerce.number().min(0).optional(),
  containments: z.coerce.number().int().min(1).optional(),
  kills: z.coerce.number().int().min(0).optional(),
  restarts: z.coerce.number().int().min(0).optional(),
  outageS: z.coerce.number().min(0).optional(),
  spreadS: z.coerce.number().min(1).optional(),
  seed: z.coerce.number().int().min(0).default(() => Date.now() % 2 ** 31),
});

function format(r: DrillReport): string {
  const rows: Array<[string, string]> = [
    ['seed', String(r.seed)],
    ['containments', String(r.containments)],
    ['worker kills', `${r.workerKills} (unexpected worker exits: ${r.workerCrashes})`],
    ['engine', `${r.engine === 'cluster' ? 'cluster (Temporal server on PostgreSQL)' : 'dev server (SQLite)'}, ${r.workers} worker process${r.workers > 1 ? 'es sharing state through PostgreSQL' : ''}`],
    ['server restarts', String(r.serverRestarts)],
    ...(r.engine === 'cluster' ? ([['database outages', `${r.databaseOutages} (${r.databaseDownSeconds.toFixed(1)} s down in all)`]] as Array<[string, string]>) : []),
    ['outage seconds', `${r.outageSeconds.toFixed(1)} with a worker running (lab down ${r.labDownSeconds.toFixed(1)} s in all)`],
    ['signal retries', String(r.submitRetries)],
    ['final states', Object.entries(r.finalStates).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ['activities by worker', Object.entries(r.byWorker).map(([w, by]) => `${w} ${Object.values(by).reduce((a, b) => a + b, 0)}`).join(', ') || 'none'],
    ['retried activities', `${r.retriedActivities} (succeeded on a later attempt)`],
    ['duplicate mutations', `${r.duplicates.length} (retried no-op calls explained by a fault: ${r.retriedCalls})`],
    ['lost', String(r.lost.length)],
    ['unexpected mutations', String(r.unexpected.length)],
    ['secret leaks', `${r.leaks.length} (worker log and evidence files scanned for ${r.secretsScanned} rotated secrets)`],
    ['duration', `${r.durationSeconds.toFixed(1)} s`],
  ];
  const lines = rows.map(([k, v]) => `${k.padEnd(21)} ${v}`);
  for (const [what, list] of [['duplicate', r.duplicates], ['lost', r.lost], ['unexpected', r.unexpected], ['leak', r.leaks]] as const) {
    for (const x of list.slice(0, 20)) lines.push(`  ${what}: ${x}`);
    if (list.length > 20) lines.push(`  ... and ${list.length - 20} more ${what}`);
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('drill')
    .description('kill the worker and the server and take the lab down under a batch of containments; count what was lost or duplicated')
    .option('--small', 'the short drill the test suite runs')
    .option('--engine <dev|cluster>', 'the dev server (SQLite) or the cluster (Temporal server on PostgreSQL)', 'dev')
    .option('--workers <n>', 'worker processes (several share the vault and evidence through PostgreSQL)')
    .option('--db-outages <n>', "cluster only: times the server's PostgreSQL stops")
    .option('--db-outage-s <s>', "cluster only: seconds each database outage lasts")
    .option('--containments <n>', 'batch size')
    .option('--kills <n>', 'worker kill -9s')
    .option('--restarts <n>', 'dev server kills and restarts')
    .option('--outage-s <s>', 'seconds the lab answers nothing')
    .option('--spread-s <s>', 'seconds over which signals arrive and faults happen')
    .option('--seed <n>', 'replays the same fault plan')
    .parse(argv, { from: 'user' });
  const parsed = Options.safeParse(program.opts());
  if (!parsed.success) {
    console.error(`drill: invalid options: ${describeIssues(parsed.error)}`);
    return 2;
  }
  const o = parsed.data;
  const base = o.engine === 'cluster' ? (o.small ? CLUSTER_DRILL : { ...DEFAULT_DRILL, engine: 'cluster' as const, workers: 2, databaseOutages: 1, databaseOutageMs: 10_000 }) : o.small ? SMALL_DRILL : DEFAULT_DRILL;
  const progress = new Progress();
  // The server and worker lead their own process groups; exiting kills them (drill-core's exit hook).
  process.once('SIGINT', () => process.exit(130));
  const report = await runDrill({
    ...base,
    containments: o.containments ?? base.containments,
    workerKills: o.kills ?? base.workerKills,
    serverRestarts: o.restarts ?? base.serverRestarts,
    outageMs: o.outageS !== undefined ? o.outageS * 1000 : base.outageMs,
    spreadMs: o.spreadS !== undefined ? o.spreadS * 1000 : base.spreadMs,
    workers: o.workers ?? base.workers,
    databaseOutages: o.dbOutages ?? base.databaseOutages,
    databaseOutageMs: o.dbOutageS !== undefined ? o.dbOutageS * 1000 : base.databaseOutageMs,
    seed: o.seed,
    onEvent: (t) => progress.note(`drill: ${t}`),
    onProgress: (done, total, detail) => progress.update('drill', done, total, detail),
  });
  progress.end();
  console.log(format(report));
  const failed = report.lost.length + report.duplicates.length + report.unexpected.length + report.leaks.length > 0;
  if (failed) console.error(`drill: FAILED; the server database, lab file and worker log are kept in ${report.dataDir}`);
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`drill: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
