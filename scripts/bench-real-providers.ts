// PostgreSQL, Redis and Keycloak in the benchmark: private servers started here when the binaries
// are installed (never the ones in CORDON_*_URL: the benchmark creates hundreds of identities).
// PostgreSQL and Redis identities are created through Cordon's own admin connection (CREATEROLE /
// +acl are enough for a login role or an ACL user), Keycloak's through the realm's setup admin; each
// phase that wants it can hold a live "attacker" position as one: a connection, or stolen tokens.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import Redis from 'ioredis';
import { clientCredentialsGrant, introspect, OidcError, passwordGrant, postgresAs, redisAs, refreshGrant } from './identity-connections';
import { keycloakMissing, startKeycloak, type LocalKeycloak } from './local-keycloak';
import { postgresBinDir, redisServerPath, startPostgres, startRedis, type LocalService } from './local-services';
import { containOnce, SUPPRESS_ONLY, withBenchWorker, type Bench } from './bench-phases';
import { benchIds, type BenchProvider } from './bench-providers';
import { percentiles, sleep, type Percentiles } from './measure';
import { signal } from '../test/fixtures';
import { keycloakSetup } from '../test/provider-fixtures';
import { testKeycloak } from '../test/services';

export interface RealBenchProvider extends BenchProvider {
  /** Opens a connection authenticated as the identity; resolves when the server closes it. */
  attack(identityId: string): Promise<{ closed: Promise<number>; close(): Promise<void> }>;
  close(): Promise<void>;
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
    attack: (id) => postgresAs(url, id, PASSWORD, 'attacker'),
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
    attack: (id) => redisAs(url, id, PASSWORD, 'attacker'),
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
    async seed(_config, ids) {
      for (const id of ids) await (kind === 'user' ? setup.user(nameOf(id), PASSWORD, { grants: false }) : setup.client(nameOf(id), PASSWORD, { grants: false }));
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
      return { closed, close: async () => void (stop = true) };
    },
    close: async () => undefined,
  };
}

/** The real providers this machine can benchmark, with what was skipped and why. */
export async function realBenchProviders(): Promise<{ providers: RealBenchProvider[]; skipped: string[]; stop(): Promise<void> }> {
  const started: LocalService[] = [];
  const providers: RealBenchProvider[] = [];
  const skipped: string[] = [];
  if (postgresBinDir()) started.push(await startPostgres().then((s) => ((providers.push(postgresBench(s.adminUrl)), s))));
  else skipped.push('postgres (PostgreSQL binaries not installed)');
  if (redisServerPath()) started.push(await startRedis().then((s) => ((providers.push(redisBench(s.adminUrl)), s))));
  else skipped.push('redis (redis-server not installed)');
  let keycloak: LocalKeycloak | undefined;
  const missing = keycloakMissing();
  if (missing.length) skipped.push(`keycloak (${missing.join(', ')} not installed)`);
  else {
    keycloak = await startKeycloak();
    providers.push(keycloakBench(keycloak, 'user'), keycloakBench(keycloak, 'client'));
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
      for (const [i, id] of ids.entries()) {
        const attacker = await p.attack(id);
        const t0 = performance.now();
        const r = await containOnce(b.client, config.taskQueue, signal({ ...p.signal, identityId: id }));
        const closedAt = await Promise.race([attacker.closed, sleep(10_000).then(() => NaN)]);
        await attacker.close();
        if (i < 3) continue; // warm-up
        dead.push(closedAt - t0);
        acked.push(r.tts);
        b.progress.update(`attacker cut-off (${p.name})`, i - 2, runs);
      }
      if (dead.some((d) => Number.isNaN(d))) throw new Error(`${p.name}: an attacker connection was still open 10 s after its containment suppressed`);
      return { provider: p.name, ...percentiles(dead), acknowledged: percentiles(acked) };
    },
    { provider: p, policy: SUPPRESS_ONLY },
  );
}
