// PostgreSQL, Redis and Keycloak in the benchmark: private servers started here when the binaries
// are installed (never the ones in CORDON_*_URL: the benchmark creates hundreds of identities).
// PostgreSQL and Redis identities are created through Cordon's own admin connection (CREATEROLE /
// +acl are enough for a login role or an ACL user), Keycloak's through the realm's setup admin; each
// phase that wants it can hold a live "attacker" position as one: a connection, or stolen tokens.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import Redis from 'ioredis';
import { clientCredentialsGrant, introspect, OidcError, passwordGrant, postgresAs, redisAs, refreshGrant, type AsIdentity } from './identity-connections';
import { keycloakMissing, startKeycloak, type LocalKeycloak } from './local-keycloak';
import { postgresBinDir, redisServerPath, startPostgres, startRedis, type LocalService } from './local-services';
import { containOnce, SUPPRESS_AND_PARK, withBenchWorker, type Bench } from './bench-phases';
import { benchIds, type BenchProvider } from './bench-providers';
import { mapLimit, percentiles, sleep, type Percentiles } from './measure';
import { signal } from '../test/fixtures';
import { keycloakSetup } from '../test/provider-fixtures';
import { testKeycloak } from '../test/services';

/** An attacker holding the identity's stolen secret: it keeps trying, reconnecting whenever it is thrown out. */
export interface Intruder {
  /** The first time the server ended the connection (or refused the token) it held when the signal came. */
  closed: Promise<number>;
  /** One command as the identity, on the held connection or a new one made with the stolen secret: whether it worked. */
  attempt(): Promise<boolean>;
  close(): Promise<void>;
}

export interface RealBenchProvider extends BenchProvider {
  /** Connects as the identity with its secret (as an attacker who stole it would) and holds the connection. */
  attack(identityId: string): Promise<Intruder>;
  close(): Promise<void>;
}

/** An intruder over a connection type: runs `command` on it, and reconnects with the secret when it is gone. */
async function reconnecting<C>(connect: () => Promise<AsIdentity<C>>, command: (c: C) => Promise<unknown>): Promise<Intruder> {
  let conn: AsIdentity<C> | undefined = await connect();
  let alive = true;
  const closed = conn.closed;
  const watch = (c: AsIdentity<C>) => void c.closed.then(() => conn === c && (alive = false));
  watch(conn);
  return {
    closed,
    async attempt() {
      try {
        if (!conn || !alive) {
          await conn?.close();
          conn = undefined;
          const c = await connect();
          conn = c;
          alive = true;
          watch(c);
        }
        await command(conn.client);
        return true;
      } catch {
        alive = false;
        return false;
      }
    },
    close: async () => void (await conn?.close()),
  };
}

const PASSWORD = `bench-${randomBytes(12).toString('base64url')}`;

function postgresBench(url: string): RealBenchProvider {
  const admin = new pg.Pool({ connectionString: url, max: 4 });
  admin.on('error', () => undefined);
  return {
    name: 'postgres',
    signal: { provider: 'postgres', identityKind: 'database-role' },
    configure: (config) => ({ ...config, postgresUrl: url }),
    async seed(_config, ids) {
      for (const id of ids) await admin.query(`CREATE ROLE ${pg.escapeIdentifier(id)} LOGIN PASSWORD ${pg.escapeLiteral(PASSWORD)}`);
    },
    attack: (id) => reconnecting(() => postgresAs(url, id, PASSWORD, 'attacker'), (c) => c.query('SELECT 1')),
    close: () => admin.end(),
  };
}

function redisBench(url: string): RealBenchProvider {
  const admin = new Redis(url, { lazyConnect: true, enableReadyCheck: false });
  admin.on('error', () => undefined);
  return {
    name: 'redis',
    signal: { provider: 'redis', identityKind: 'service-account' },
    configure: (config) => ({ ...config, redisUrl: url }),
    async seed(_config, ids) {
      for (const id of ids) await admin.call('ACL', 'SETUSER', id, 'on', `>${PASSWORD}`, '~app:*', '+get', '+set', '+ping');
    },
    attack: (id) => reconnecting(() => redisAs(url, id, PASSWORD, 'attacker'), (c) => c.get('app:bench')),
    close: async () => admin.disconnect(),
  };
}

/**
 * Keycloak: a user whose refresh token the attacker holds (password grant), or a confidential
 * client whose token it holds (client credentials). The attacker's "connection" ends when the
 * token stops working: the refresh is refused and introspection says inactive (for a client, the
 * latter), polled every 10 ms.
 */
function keycloakBench(kc: LocalKeycloak, kind: 'user' | 'client'): RealBenchProvider {
  const view = testKeycloak(kc.env())!;
  const setup = keycloakSetup(view);
  const keycloak = { url: view.url, realm: view.realm, clientId: view.admin.clientId, clientSecret: view.admin.secret, highRiskRoles: view.highRiskRoles };
  const nameOf = (id: string) => id.slice(id.indexOf(':') + 1);
  return {
    name: `keycloak-${kind}`,
    signal: { provider: 'keycloak', identityKind: kind === 'user' ? 'human' : 'service-account' },
    idFor: (name) => `${view.realm}/${kind}:${name}`,
    configure: (c) => ({ ...c, keycloak }),
    // Its JIT settles over the first thousands of containments, and a real one has run for weeks:
    // after 300 untimed, its CPU per user containment at 8 in flight read 33-39 ms; after 1,000,
    // 21; after 2,000, 14 (Keycloak-only runs, one session), though some runs still fell at 2,000
    // (78 → 44 → 31 in its last three chunks): so the bench goes on until a chunk no longer falls by
    // a tenth (at most 4,000). The table prints the warm-up's trend.
    warmUpRuns: 2000,
    async seed(_config, ids) {
      await mapLimit(ids, 4, (id) => (kind === 'user' ? setup.user(nameOf(id), PASSWORD, { grants: false }) : setup.client(nameOf(id), PASSWORD, { grants: false })));
    },
    async attack(id) {
      const name = nameOf(id);
      let tokens = kind === 'user' ? await passwordGrant(view.issuer, 'test-app', name, PASSWORD) : await clientCredentialsGrant(view.issuer, name, PASSWORD);
      const access = tokens.access_token;
      let stop = false;
      const refreshRefused = async () => {
        if (kind === 'client') return true;
        try {
          tokens = await refreshGrant(view.issuer, 'test-app', tokens.refresh_token!);
          return false;
        } catch (err) {
          return err instanceof OidcError && err.error === 'invalid_grant';
        }
      };
      const closed = (async () => {
        while (!stop) {
          if ((await refreshRefused()) && !(await introspect(view.issuer, view.introspector, access)).active) return performance.now();
          await sleep(10);
        }
        return NaN;
      })();
      // A command is a call a resource server accepts (introspection says active) with the token
      // held; once refused, a refresh, then a new sign-in with the stolen password or secret.
      let held = access;
      const attempt = async () => {
        try {
          if ((await introspect(view.issuer, view.introspector, held)).active) return true;
          const fresh = kind === 'user' ? await passwordGrant(view.issuer, 'test-app', name, PASSWORD) : await clientCredentialsGrant(view.issuer, name, PASSWORD);
          held = fresh.access_token;
          return (await introspect(view.issuer, view.introspector, held)).active;
        } catch {
          return false;
        }
      };
      return { closed, attempt, close: async () => void (stop = true) };
    },
    close: async () => undefined,
  };
}

/** The real providers this machine can benchmark, with what was skipped and why. */
export async function realBenchProviders(wanted: (name: string) => boolean = () => true): Promise<{ providers: RealBenchProvider[]; skipped: string[]; stop(): Promise<void> }> {
  const started: LocalService[] = [];
  const providers: RealBenchProvider[] = [];
  const skipped: string[] = [];
  if (!wanted('postgres')) skipped.push('postgres (not in --providers)');
  else if (postgresBinDir()) started.push(await startPostgres().then((s) => ((providers.push(postgresBench(s.adminUrl)), s))));
  else skipped.push('postgres (PostgreSQL binaries not installed)');
  if (!wanted('redis')) skipped.push('redis (not in --providers)');
  else if (redisServerPath()) started.push(await startRedis().then((s) => ((providers.push(redisBench(s.adminUrl)), s))));
  else skipped.push('redis (redis-server not installed)');
  let keycloak: LocalKeycloak | undefined;
  const missing = keycloakMissing();
  if (!wanted('keycloak-user') && !wanted('keycloak-client')) skipped.push('keycloak (not in --providers)');
  else if (missing.length) skipped.push(`keycloak (${missing.join(', ')} not installed)`);
  else {
    keycloak = await startKeycloak();
    providers.push(...(['user', 'client'] as const).filter((k) => wanted(`keycloak-${k}`)).map((k) => keycloakBench(keycloak!, k)));
  }
  return {
    providers,
    skipped,
    stop: async () => {
      await Promise.all(providers.map((p) => p.close()));
      await Promise.all([...started.map((s) => s.stop()), keycloak?.stop()]);
    },
  };
}

export interface Cutoff extends Percentiles {
  provider: string;
  /** Time to suppress (provider acknowledgement) over the same runs, for comparison. */
  acknowledged: Percentiles;
  /** Signal submitted → the attacker's last command that worked (it retries every 10 ms, reconnecting with the stolen secret). */
  lastSuccess: Percentiles;
  /** Runs in which the attacker still got in 5 s after suppression (reconnecting with the stolen secret). */
  stillIn: number;
}

/** The attacker counts as out once its commands have failed for this long after suppression. */
const OUT_FOR_MS = 2000;
const GIVE_UP_MS = 5000;

/** Runs the attacker's commands every 10 ms until it has been out for OUT_FOR_MS after `ackAt`; the last success, or NaN when still in at GIVE_UP_MS. */
async function lastSuccessOf(intruder: Intruder, acked: Promise<number>, t0: number): Promise<{ last: number; stillIn: boolean }> {
  let last = t0;
  let ackAt = Infinity;
  void acked.then((t) => (ackAt = t), () => (ackAt = performance.now()));
  for (;;) {
    const ok = await intruder.attempt();
    const now = performance.now();
    if (ok) last = now;
    if (now > ackAt + GIVE_UP_MS) return { last, stillIn: ok || now - last < OUT_FOR_MS };
    if (!ok && now > ackAt && now - Math.max(last, ackAt) >= OUT_FOR_MS) return { last, stillIn: false };
    await sleep(10);
  }
}

/**
 * What the attacker sees: a live connection as the identity, then a signal; the time from
 * submitting the signal to the server closing that connection. One at a time, so each figure
 * is one containment's own latency.
 */
export async function attackerCutoff(b: Bench, p: RealBenchProvider, runs: number): Promise<Cutoff> {
  return withBenchWorker(
    b,
    `cutoff-${p.name}`,
    async (config) => {
      const ids = benchIds(p, Array.from({ length: runs + 3 }, (_, i) => `cutoff-${p.name}-${i}`));
      await p.seed(config, ids);
      const dead: number[] = [];
      const acked: number[] = [];
      const lastOk: number[] = [];
      let stillIn = 0;
      for (const [i, id] of ids.entries()) {
        const attacker = await p.attack(id);
        const t0 = performance.now();
        const contained = containOnce(b.client, config.taskQueue, signal({ ...p.signal, identityId: id }));
        const trying = lastSuccessOf(attacker, contained.then(() => performance.now()), t0);
        const r = await contained;
        const closedAt = await Promise.race([attacker.closed, sleep(10_000).then(() => NaN)]);
        const { last, stillIn: inside } = await trying;
        await attacker.close();
        if (i < 3) continue; // warm-up
        dead.push(closedAt - t0);
        acked.push(r.tts);
        lastOk.push(last - t0);
        if (inside) stillIn++;
        b.progress.update(`attacker cut-off (${p.name})`, i - 2, runs);
      }
      if (dead.some((d) => Number.isNaN(d))) throw new Error(`${p.name}: an attacker connection was still open 10 s after its containment suppressed`);
      return { provider: p.name, ...percentiles(dead), acknowledged: percentiles(acked), lastSuccess: percentiles(lastOk), stillIn };
    },
    { provider: p, policy: SUPPRESS_AND_PARK },
  );
}
