// Private PostgreSQL and Redis instances for tests, benchmarks and the demo: loopback only, free
// ports, temporary folders, never the machine's system services. Each comes with Cordon's
// least-privilege admin account (the provider's connection) and a setup account for fixtures.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { Client as PgClient } from 'pg';
import Redis from 'ioredis';
import { freePort } from './dev-server';

export interface LocalService {
  /** The provider's admin connection (least privilege), as CORDON_POSTGRES_URL / CORDON_REDIS_URL. */
  adminUrl: string;
  /** A full-power connection for test fixtures only. */
  setupUrl: string;
  startedInMs: number;
  /** Stops the server but keeps its data and port, for outage drills; resume() starts it again. */
  halt(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/** Where PostgreSQL's server binaries are: Debian keeps them outside PATH. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (newest) return join(root, newest, 'bin');
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  return which.status === 0 ? join(which.stdout.trim(), '..') : undefined;
}

export function redisServerPath(): string | undefined {
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : undefined;
}

const isRoot = () => userInfo().uid === 0;
const secret = () => randomBytes(18).toString('base64url');

/** Runs a server binary; PostgreSQL refuses to run as root, so as root it runs as `postgres`. */
function asServiceUser(cmd: string, args: string[], pgUser: boolean): [string, string[]] {
  return pgUser && isRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export interface ServerProcess {
  pid: number;
  exited: () => string | undefined;
  stop: () => Promise<void>;
}

/**
 * Starts a server in its own process group and stops the whole group (SIGKILL after 5 s), also when
 * this process exits. Its output goes to `log` (a file, never a pipe: `npm test` blocks its event
 * loop while the test files run, and a server writing into an undrained pipe stalls once it is
 * full); the file's tail goes into the exit message.
 */
export function startProcess(cmd: string, args: string[], what: string, stopSignal: NodeJS.Signals, o: { log: string; env?: NodeJS.ProcessEnv }): ServerProcess {
  const fd = openSync(o.log, 'a', 0o600);
  // Its own process group: `runuser` (or `kc.sh`) sits between us and the server, and both must go.
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env: o.env ?? process.env });
  closeSync(fd);
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  const tail = () => {
    try {
      return readFileSync(o.log, 'utf8').slice(-4000).trim();
    } catch {
      return '';
    }
  };
  let exit: string | undefined;
  const orphanGuard = () => signal('SIGKILL'); // never outlive the process that started it
  process.once('exit', orphanGuard);
  const done = new Promise<void>((ok) =>
    child.once('exit', (code, sig) => {
      exit = `${what} exited with ${sig ?? code}: ${tail()}`;
      process.off('exit', orphanGuard);
      ok();
    }),
  );
  return {
    pid: child.pid!,
    exited: () => exit,
    stop: async () => {
      if (exit === undefined) signal(stopSignal);
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
      if (exit === undefined) signal('SIGKILL');
      await done;
    },
  };
}

export async function waitFor(what: string, exited: () => string | undefined, probe: () => Promise<void>, timeoutMs = 20_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const gone = exited();
    if (gone) throw new Error(gone);
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what} did not answer within ${timeoutMs} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** A server process that can be stopped and started again on the same data and port. */
async function restartable(what: string, cmd: string, args: string[], log: string, probe: () => Promise<void>, stopSignal: NodeJS.Signals = 'SIGTERM') {
  let current = startProcess(cmd, args, what, stopSignal, { log });
  await waitFor(what, current.exited, probe);
  return {
    halt: () => current.stop(),
    resume: async () => {
      current = startProcess(cmd, args, what, stopSignal, { log });
      await waitFor(what, current.exited, probe);
    },
  };
}

export interface PostgresOptions {
  /**
   * Keeps the cluster's data here across runs (created on first use) instead of a temporary
   * folder that stop() removes. The accounts' passwords are new at every start.
   */
  dir?: string;
}

export async function startPostgres(o: PostgresOptions = {}): Promise<LocalService> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found (Debian package "postgresql")');
  const t0 = Date.now();
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'cordon-pg-'));
  // Parents stay traversable: as root the server runs as `postgres`, which must reach its folder.
  mkdirSync(dirname(dir), { recursive: true });
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
  if (isRoot()) {
    const pg = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(pg.stdout), Number(gid.stdout));
  }
  const data = join(dir, 'data');
  if (!existsSync(join(data, 'PG_VERSION'))) {
    // Sockets trust the local OS user (fixtures only); TCP, which Cordon uses, needs SCRAM passwords.
    const [initCmd, initArgs] = asServiceUser(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-sync'], true);
    const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  const port = await freePort();
  const [cmd, args] = asServiceUser(
    join(bin, 'postgres'),
    ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off', '-c', 'log_connections=on', '-c', 'max_connections=200'],
    true,
  );
  const setupUrl = `postgres://postgres@/postgres?host=${encodeURIComponent(dir)}&port=${port}`;
  const superuser = () => new PgClient({ host: dir, port, user: 'postgres', database: 'postgres' });
  // SIGINT is PostgreSQL's fast shutdown: it ends client sessions instead of waiting for them.
  const server = await restartable(
    'postgres',
    cmd,
    args,
    join(dir, 'server.log'),
    async () => {
      const c = superuser();
      await c.connect();
      await c.end();
    },
    'SIGINT',
  );
  const password = secret();
  const c = superuser();
  await c.connect();
  try {
    // Least privilege for Cordon: manage non-superuser roles, end their backends, read their
    // activity. Owners of objects whose grants it narrows add it to their role (see README).
    const exists = (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = 'cordon_admin'`)).rowCount;
    await c.query(`${exists ? 'ALTER' : 'CREATE'} ROLE cordon_admin LOGIN CREATEROLE PASSWORD '${password}'`);
    await c.query('GRANT pg_signal_backend, pg_read_all_stats TO cordon_admin');
  } finally {
    await c.end();
  }
  return {
    adminUrl: `postgres://cordon_admin:${password}@127.0.0.1:${port}/postgres`,
    setupUrl,
    startedInMs: Date.now() - t0,
    ...server,
    stop: async () => {
      await server.halt();
      if (!o.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startRedis(): Promise<LocalService> {
  const exe = redisServerPath();
  if (!exe) throw new Error('redis-server not found (Debian package "redis-server")');
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'cordon-redis-'));
  const port = await freePort();
  const adminPassword = secret();
  const setupPassword = secret();
  const conf = join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [
      'bind 127.0.0.1',
      `port ${port}`,
      `dir ${dir}`,
      'save ""',
      'appendonly no',
      'daemonize no',
      // Users live in an ACL file so that `ACL SAVE` carries them across a restart (outage drills).
      `aclfile ${join(dir, 'users.acl')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  writeFileSync(
    join(dir, 'users.acl'),
    [
      // The admin can manage ACLs and clients and nothing else: it never reads application data.
      `user cordon-admin on >${adminPassword} -@all +acl +client|list +client|kill +ping`,
      `user default on >${setupPassword} ~* &* +@all`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const server = await restartable('redis-server', exe, [conf], join(dir, 'server.log'), async () => {
    const r = new Redis({ port, host: '127.0.0.1', password: setupPassword, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined); // refused while starting: the probe's own rejection says so
    try {
      await r.connect();
      await r.ping();
    } finally {
      r.disconnect();
    }
  });
  return {
    adminUrl: `redis://cordon-admin:${adminPassword}@127.0.0.1:${port}`,
    setupUrl: `redis://default:${setupPassword}@127.0.0.1:${port}`,
    startedInMs: Date.now() - t0,
    ...server,
    stop: async () => {
      await server.halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Installs what is missing from Debian's packages; only possible as root with apt-get. */
const missingPackages = () => [...(postgresBinDir() ? [] : ['postgresql']), ...(redisServerPath() ? [] : ['redis-server'])];

export function installMissing(): string[] {
  const missing = missingPackages();
  if (!missing.length || !isRoot() || spawnSync('sh', ['-c', 'command -v apt-get']).status !== 0) return missing;
  console.log(`cordon: installing ${missing.join(' ')} from Debian's packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-q'], ['install', '-y', '-q', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed with ${r.status}`);
  }
  return missingPackages();
}

/**
 * A database with a login role that owns it, on a PostgreSQL reached through `setupUrl`: what an
 * operator gives Cordon's workers as CORDON_STATE_URL (the shared vault and evidence store).
 */
export async function createStateDatabase(setupUrl: string, name = `cordon_state_${randomBytes(3).toString('hex')}`): Promise<string> {
  const password = secret();
  const c = new PgClient({ connectionString: setupUrl });
  await c.connect();
  try {
    await c.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
    await c.query(`CREATE DATABASE ${name} OWNER ${name}`);
  } finally {
    await c.end();
  }
  const port = /[?&]port=(\d+)/.exec(setupUrl)?.[1];
  return `postgres://${name}:${password}@127.0.0.1:${port}/${name}`;
}
