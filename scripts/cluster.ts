// `npm run cluster`: a production-shaped Temporal on this machine (the server on PostgreSQL, SQL
// visibility, the tuned dynamic config), for several Cordon workers to share. Prints one line,
// TEMPORAL_ADDRESS=host:port, on stdout (everything else goes to stderr); Ctrl-C stops the server,
// then PostgreSQL, and leaves no process behind. The private PostgreSQL keeps its data in
// .cordon/cluster (--fresh starts over); CORDON_TEMPORAL_PG_URL uses an existing one instead.
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { describeIssues } from '../workflows/schemas';
import { startCluster } from './cluster-core';
import { resolveTemporalServer } from './temporal-server';

const ROOT = resolve(__dirname, '..');

const Options = z.object({
  shards: z.coerce.number().int().min(1, 'shards is at least 1').max(16384),
  port: z.coerce.number().int().min(1).max(65535),
  fresh: z.boolean().default(false),
  dynamicConfig: z.array(z.string().regex(/^[A-Za-z0-9_.]+=.+$/, 'dynamic config values are key=value')).default([]),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']),
});

/** key=value with a JSON value when it parses as one (true, 4, "x"), a string otherwise. */
function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('cluster')
    .description('Temporal server on PostgreSQL for several Cordon workers; prints TEMPORAL_ADDRESS')
    .option('--shards <n>', 'history shards (fixed when the database is created)', process.env.CORDON_CLUSTER_SHARDS ?? '4')
    .option('--port <port>', "the frontend's gRPC port", process.env.CORDON_TEMPORAL_PORT ?? '7233')
    .option('--fresh', 'delete the private PostgreSQL data in .cordon/cluster first')
    .option('--dynamic-config <key=value>', 'a server dynamic config value (repeatable; null removes a tuned one)', (v: string, all: string[]) => [...all, v], [])
    .option('--log-level <level>', 'server log level (its log is .cordon/cluster/server/server.log)', 'warn')
    .parse(argv, { from: 'user' });
  const parsed = Options.safeParse(program.opts());
  if (!parsed.success) {
    console.error(`cluster: invalid options: ${describeIssues(parsed.error)}`);
    return 2;
  }
  const o = parsed.data;
  const pgUrl = process.env.CORDON_TEMPORAL_PG_URL;
  const base = join(ROOT, '.cordon', 'cluster');
  if (o.fresh && !pgUrl) rmSync(base, { recursive: true, force: true });
  const say = (text: string) => console.error(`cluster: ${text}`);

  const t0 = Date.now();
  const binaries = await resolveTemporalServer();
  say(`temporal-server and temporal-sql-tool from ${binaries.source}${binaries.buildSeconds ? ` (built in ${binaries.buildSeconds.toFixed(0)} s)` : ''}: ${binaries.server}`);
  const cluster = await startCluster({
    binaries,
    pgUrl,
    pgDir: pgUrl ? undefined : join(base, 'pg'),
    dir: join(base, 'server'),
    shards: o.shards,
    port: o.port,
    logLevel: o.logLevel,
    dynamicConfig: Object.fromEntries(o.dynamicConfig.map((kv) => [kv.slice(0, kv.indexOf('=')), parseValue(kv.slice(kv.indexOf('=') + 1))])),
    onEvent: say,
  });
  say(`dynamic config: ${Object.entries(cluster.dynamicConfig).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`);
  say(`up in ${((Date.now() - t0) / 1000).toFixed(1)} s; run workers with the line below (each with its own CORDON_DATA_DIR, the same CORDON_STATE_URL, policy and keys: see README). Ctrl-C stops it.`);
  console.log(`TEMPORAL_ADDRESS=${cluster.address}`);

  return new Promise<number>((done) => {
    let stopping = false;
    let watch: NodeJS.Timeout | undefined = undefined;
    const stop = async (why: string, code: number) => {
      if (stopping) return;
      stopping = true;
      clearInterval(watch);
      say(`${why}: stopping the server, then PostgreSQL`);
      await cluster.stop();
      say('stopped');
      done(code);
    };
    process.on('SIGINT', () => void stop('interrupted', 0));
    process.on('SIGTERM', () => void stop('terminated', 0));
    watch = setInterval(() => {
      if (cluster.serverPid() === undefined) {
        void stop(`the server exited by itself (see ${cluster.logFile})`, 1);
      }
    }, 1000);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`cluster: ${(err as Error).message}`);
    process.exit(1);
  },
);
