// A production-shaped Temporal on this machine: the real server (frontend, history, matching and
// worker services in one process) on PostgreSQL with SQL visibility, as a self-hosted cluster
// runs it. Used by `npm run cluster`, the cluster test, the drill and the bench. The server can be
// killed and started again on the same database and ports, and a private PostgreSQL can be halted
// and resumed, for fault drills.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { Client as PgClient } from 'pg';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { startPostgres, type LocalService } from './local-services';
import { addMissingSearchAttributes } from './search-attributes-admin';
import { resolveTemporalServer, type ServerBinaries } from './temporal-server';
import { ENGINE_TUNING } from './engine-tuning';


/** Always set: PostgreSQL's visibility columns hold 255 characters, so longer ids fail cleanly up front. */
const BASE_DYNAMIC_CONFIG: Record<string, unknown> = { 'limit.maxIDLength': 255 };

export interface ClusterOptions {
  binaries?: ServerBinaries;
  /** An existing PostgreSQL (a superuser or a role with CREATEDB); otherwise a private one. */
  pgUrl?: string;
  /** The private PostgreSQL keeps its data here across runs; otherwise in a temporary folder. */
  pgDir?: string;
  /** Configuration and the server log; a temporary folder by default, removed by stop(). */
  dir?: string;
  /** Fixed when the database is created (Temporal cannot reshard). */
  shards?: number;
  /** The frontend's gRPC port; a free one by default. */
  port?: number;
  namespace?: string;
  /** Dynamic config on top of ENGINE_TUNING (scripts/engine-tuning.ts); a value of null removes a tuned key. */
  dynamicConfig?: Record<string, unknown>;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  onEvent?: (text: string) => void;
}

export interface ClusterTimings {
  postgresMs: number;
  schemaMs: number;
  serverMs: number;
  namespaceMs: number;
  totalMs: number;
}

export interface Cluster {
  address: string;
  namespace: string;
  shards: number;
  dynamicConfig: Record<string, unknown>;
  timings: ClusterTimings;
  /** The private PostgreSQL (halt/resume for outage drills); undefined with pgUrl. */
  postgres?: LocalService;
  dir: string;
  logFile: string;
  serverPid(): number | undefined;
  /** Kills the server process (SIGKILL by default) and waits until it is gone. */
  killServer(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same database and ports; resolves once it serves the namespace. */
  restartServer(): Promise<number>;
  stop(): Promise<void>;
}

/** Membership ports are stored as smallint: ringpop's must stay below 32768, under Linux's ephemeral range. */
async function freeLowPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const ok = await new Promise<boolean>((done) => {
      const srv = createServer();
      srv.once('error', () => done(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => done(true)));
    });
    if (ok) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port below 32768');
}

interface PgTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  tls: false | { verifyHost: boolean };
}

function parsePgUrl(url: string): PgTarget {
  const u = new URL(url);
  if (!/^postgres(ql)?:$/.test(u.protocol)) throw new Error('CORDON_TEMPORAL_PG_URL is a postgres:// URL');
  const sslmode = u.searchParams.get('sslmode');
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    tls: sslmode && sslmode !== 'disable' && sslmode !== 'prefer' ? { verifyHost: sslmode === 'verify-full' } : false,
  };
}

const DATABASES = [
  { name: 'temporal', schema: 'postgresql/v12/temporal' },
  { name: 'temporal_visibility', schema: 'postgresql/v12/visibility' },
] as const;

/** Creates the two databases if missing, sets up versioning once, and upgrades both to the server's schema. */
async function prepareSchemas(binaries: ServerBinaries, pg: PgTarget): Promise<void> {
  const connect = (database: string) =>
    new PgClient({ host: pg.host, port: pg.port, user: pg.user, password: pg.password, database, ssl: pg.tls ? { rejectUnauthorized: pg.tls.verifyHost } : undefined });
  const admin = connect('postgres');
  await admin.connect();
  try {
    for (const db of DATABASES) {
      if (!(await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [db.name])).rowCount) await admin.query(`CREATE DATABASE ${db.name}`);
    }
  } finally {
    await admin.end();
  }
  // The password travels in the environment, never on a command line that `ps` shows.
  const env = { ...process.env, SQL_PLUGIN: 'postgres12', SQL_HOST: pg.host, SQL_PORT: String(pg.port), SQL_USER: pg.user, SQL_PASSWORD: pg.password };
  const tls = pg.tls ? ['--tls', ...(pg.tls.verifyHost ? [] : ['--tls-disable-host-verification'])] : [];
  const tool = (db: string, args: string[]) => {
    const r = spawnSync(binaries.sqlTool, [...tls, '--db', db, ...args], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`temporal-sql-tool ${args[0]} on ${db} failed: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  };
  for (const db of DATABASES) {
    const c = connect(db.name);
    await c.connect();
    let versioned: boolean;
    try {
      versioned = (await c.query(`SELECT to_regclass('schema_version') IS NOT NULL AS v`)).rows[0].v as boolean;
    } finally {
      await c.end();
    }
    if (!versioned) tool(db.name, ['setup-schema', '-v', '0.0']);
    tool(db.name, ['update-schema', '--schema-name', db.schema]); // to the newest version the tool embeds
  }
}

function yamlValue(v: unknown): string {
  return JSON.stringify(v); // JSON scalars are YAML
}

function dynamicConfigYaml(values: Record<string, unknown>): string {
  return (
    Object.entries(values)
      .map(([k, v]) => `${k}:\n  - value: ${yamlValue(v)}\n    constraints: {}`)
      .join('\n') + '\n'
  );
}

interface Ports {
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
}

function serverConfigYaml(o: { pg: PgTarget; shards: number; ports: Ports; dynamicConfigFile: string; logLevel: string }): string {
  const { pg, ports } = o;
  const store = (database: string, maxConns: number) => [
    `      sql:`,
    `        pluginName: "postgres12"`,
    `        databaseName: "${database}"`,
    `        connectAddr: ${yamlValue(`${pg.host}:${pg.port}`)}`,
    `        connectProtocol: "tcp"`,
    `        user: ${yamlValue(pg.user)}`,
    // Rendered from the server's environment at start: the password never sits in a file.
    `        password: {{ env "CORDON_TEMPORAL_PG_PASSWORD" | toJson }}`,
    `        maxConns: ${maxConns}`,
    `        maxIdleConns: ${maxConns}`,
    `        maxConnLifetime: "1h"`,
    ...(pg.tls ? [`        tls:`, `          enabled: true`, `          enableHostVerification: ${pg.tls.verifyHost}`] : []),
  ];
  const service = (name: string, grpc: number, membership: number, http?: number) => [
    `  ${name}:`,
    `    rpc:`,
    `      grpcPort: ${grpc}`,
    `      membershipPort: ${membership}`,
    `      bindOnIP: "127.0.0.1"`,
    ...(http ? [`      httpPort: ${http}`] : []),
  ];
  return [
    '# enable-template (the PostgreSQL password comes from the environment)',
    'log:',
    '  stdout: true',
    `  level: ${o.logLevel}`,
    'persistence:',
    '  defaultStore: postgres-default',
    '  visibilityStore: postgres-visibility',
    `  numHistoryShards: ${o.shards}`,
    '  datastores:',
    '    postgres-default:',
    ...store('temporal', 20),
    '    postgres-visibility:',
    ...store('temporal_visibility', 10),
    'global:',
    '  membership:',
    '    maxJoinDuration: 30s',
    '    broadcastAddress: "127.0.0.1"',
    'services:',
    ...service('frontend', ports.frontend, ports.frontendMembership, ports.frontendHttp),
    ...service('history', ports.history, ports.historyMembership),
    ...service('matching', ports.matching, ports.matchingMembership),
    ...service('worker', ports.worker, ports.workerMembership),
    'clusterMetadata:',
    '  enableGlobalNamespace: false',
    '  failoverVersionIncrement: 10',
    '  masterClusterName: "active"',
    '  currentClusterName: "active"',
    '  clusterInformation:',
    '    active:',
    '      enabled: true',
    '      initialFailoverVersion: 1',
    '      rpcName: "frontend"',
    `      rpcAddress: "127.0.0.1:${ports.frontend}"`,
    `      httpAddress: "127.0.0.1:${ports.frontendHttp}"`,
    'dcRedirectionPolicy:',
    '  policy: "noop"',
    'dynamicConfigClient:',
    `  filepath: ${yamlValue(o.dynamicConfigFile)}`,
    '  pollInterval: "10s"',
    '',
  ].join('\n');
}

/** Waits until the frontend answers and `check` passes (the namespace exists, or just the system info). */
async function untilServing(address: string, exited: () => string | undefined, check: (c: Connection) => Promise<unknown>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const gone = exited();
    if (gone) throw new Error(gone);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await check(conn);
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`the Temporal server did not serve ${address} within ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function registerNamespace(address: string, namespace: string): Promise<void> {
  const conn = await Connection.connect({ address });
  try {
    try {
      await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('3 days') });
    } catch (err) {
      if (!/already exists|AlreadyExists/i.test((err as Error).message)) throw err;
    }
    // The namespace may not be in the frontend's cache yet (it refreshes every 2 s): retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await addMissingSearchAttributes(conn.operatorService, namespace);
        break;
      } catch (err) {
        if (attempt > 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    // Each service reads namespaces (and their search-attribute aliases) from a cache refreshed
    // every 2 s; a workflow upserting an attribute before that would fail its task and retry.
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    await conn.close();
  }
}

export async function startCluster(o: ClusterOptions = {}): Promise<Cluster> {
  const t0 = Date.now();
  const say = o.onEvent ?? (() => undefined);
  const binaries = o.binaries ?? (await resolveTemporalServer());
  const namespace = o.namespace ?? 'default';
  const shards = o.shards ?? 4;
  const ownDir = !o.dir;
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'cordon-cluster-'));
  mkdirSync(dir, { recursive: true }); // not 0700: as root, PostgreSQL (user postgres) may live beside it
  mkdirSync(join(dir, 'config'), { recursive: true, mode: 0o700 });
  // Temporal cannot reshard: a database made with another count would not start. Say so plainly.
  const marker = join(dir, 'shards');
  if (o.pgDir && existsSync(marker) && existsSync(join(o.pgDir, 'data')) && Number(readFileSync(marker, 'utf8')) !== shards) {
    throw new Error(`this cluster's database was created with ${readFileSync(marker, 'utf8').trim()} history shards, not ${shards}: Temporal cannot change that (start it fresh to use ${shards})`);
  }

  let postgres: LocalService | undefined;
  let pg: PgTarget;
  if (o.pgUrl) {
    pg = parsePgUrl(o.pgUrl);
  } else {
    postgres = await startPostgres({ dir: o.pgDir });
    const password = randomBytes(18).toString('base64url');
    const c = new PgClient({ connectionString: postgres.setupUrl });
    await c.connect();
    try {
      const exists = (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = 'temporal'`)).rowCount;
      await c.query(`${exists ? 'ALTER' : 'CREATE'} ROLE temporal LOGIN CREATEDB PASSWORD '${password}'`);
    } finally {
      await c.end();
    }
    pg = { host: '127.0.0.1', port: Number(new URL(postgres.adminUrl).port), user: 'temporal', password, tls: false };
  }
  const postgresMs = Date.now() - t0;
  say(`PostgreSQL ${postgres ? `(private) up in ${postgresMs} ms` : `at ${pg.host}:${pg.port}`}`);

  let serverProcess: ChildProcess | undefined;
  let exit: Promise<void> = Promise.resolve();
  let exited: string | undefined;
  const killGroup = (signal: NodeJS.Signals) => {
    if (!serverProcess?.pid || exited !== undefined) return;
    try {
      process.kill(-serverProcess.pid, signal);
    } catch {
      // already gone
    }
  };
  const orphanGuard = () => {
    killGroup('SIGKILL');
  };
  process.on('exit', orphanGuard);

  try {
    const t1 = Date.now();
    await prepareSchemas(binaries, pg);
    const schemaMs = Date.now() - t1;
    writeFileSync(marker, `${shards}\n`);
    say(`schemas temporal and temporal_visibility ready in ${schemaMs} ms`);

    const taken = new Set<number>();
    const ports: Ports = {
      frontend: o.port ?? (await freeLowPort(taken)),
      frontendHttp: await freeLowPort(taken),
      frontendMembership: await freeLowPort(taken),
      history: await freeLowPort(taken),
      historyMembership: await freeLowPort(taken),
      matching: await freeLowPort(taken),
      matchingMembership: await freeLowPort(taken),
      worker: await freeLowPort(taken),
      workerMembership: await freeLowPort(taken),
    };
    const dynamicConfig = Object.fromEntries(Object.entries({ ...BASE_DYNAMIC_CONFIG, ...ENGINE_TUNING, ...o.dynamicConfig }).filter(([, v]) => v !== null));
    const dynamicConfigFile = join(dir, 'config', 'dynamicconfig.yaml');
    writeFileSync(dynamicConfigFile, dynamicConfigYaml(dynamicConfig));
    writeFileSync(join(dir, 'config', 'cordon.yaml'), serverConfigYaml({ pg, shards, ports, dynamicConfigFile, logLevel: o.logLevel ?? 'warn' }), { mode: 0o600 });
    const address = `127.0.0.1:${ports.frontend}`;
    const logFile = join(dir, 'server.log');

    const launch = async (check: (c: Connection) => Promise<unknown>): Promise<number> => {
      const started = Date.now();
      // Its log goes straight to a file, so the server never blocks on a pipe nobody reads.
      const log = openSync(logFile, 'a');
      const child = spawn(binaries.server, ['--root', dir, '--config', 'config', '--env', 'cordon', '--allow-no-auth', 'start'], {
        env: { ...process.env, CORDON_TEMPORAL_PG_PASSWORD: pg.password },
        stdio: ['ignore', log, log],
        detached: true, // its own group: a terminal's Ctrl-C reaches only us, and we stop it in order
      });
      closeSync(log);
      serverProcess = child;
      exited = undefined;
      exit = new Promise<void>((done) =>
        child.once('exit', (code, sig) => {
          exited = `the Temporal server exited with ${sig ?? code} (log: ${logFile})`;
          done();
        }),
      );
      await untilServing(address, () => exited, check, 120_000);
      return Date.now() - started;
    };

    const t2 = Date.now();
    await launch((c) => c.workflowService.getSystemInfo({}));
    const serverMs = Date.now() - t2;
    say(`Temporal server ${binaries.source === 'go-build' ? '(just built) ' : ''}serving ${address} after ${serverMs} ms (${shards} history shards)`);
    const t3 = Date.now();
    await registerNamespace(address, namespace);
    const namespaceMs = Date.now() - t3;
    say(`namespace ${namespace} and Cordon's ${ALL_SEARCH_ATTRIBUTES.length} search attributes registered in ${namespaceMs} ms`);
    const servesNamespace = (c: Connection) => c.workflowService.describeNamespace({ namespace });

    const killServer = async (signal: NodeJS.Signals = 'SIGKILL') => {
      const done = exit;
      killGroup(signal);
      await done;
    };
    let stopped = false;
    return {
      address,
      namespace,
      shards,
      dynamicConfig,
      timings: { postgresMs, schemaMs, serverMs, namespaceMs, totalMs: Date.now() - t0 },
      postgres,
      dir,
      logFile,
      serverPid: () => (exited === undefined ? serverProcess?.pid : undefined),
      killServer,
      restartServer: () => launch(servesNamespace),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        // Graceful first (the services leave the membership ring), then no waiting past 20 s.
        const done = exit;
        killGroup('SIGTERM');
        const timer = setTimeout(() => killGroup('SIGKILL'), 20_000);
        await done;
        clearTimeout(timer);
        process.off('exit', orphanGuard);
        await postgres?.stop();
        if (ownDir) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    killGroup('SIGKILL');
    await exit;
    process.off('exit', orphanGuard);
    await postgres?.stop();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
