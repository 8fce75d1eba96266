// One fixture per provider: how to create a realistic identity in the real system, and (for the
// real servers) how an attacker holding its password connects and tries things. The conformance
// suite and the end-to-end tests run the same checks over every fixture.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import Redis from 'ioredis';
import type { CordonConfig } from '../activities/config';
import { LabDirectory, LabProvider } from '../activities/providers/lab';
import { PostgresProvider } from '../activities/providers/postgres';
import type { IdentityProvider } from '../activities/providers/provider';
import { RedisProvider } from '../activities/providers/redis';
import { postgresAs, redisAs } from '../scripts/identity-connections';
import { inCI } from './services';
import { labIdentity } from './fixtures';

export interface Seeded {
  identityId: string;
  password: string;
  /** The approved minimum restrict keeps, in the provider's notation. */
  keep: string[];
  /** The grants after restrict, when they are not exactly `keep` (rules that only deny stay). */
  narrowed?: string[];
  /** A well-formed grant in the provider's notation that the identity does not hold. */
  notHeld: string;
}

/** A live connection authenticated as the identity. */
export interface Connection {
  /** Uses access the approved minimum keeps; throws when denied or disconnected. */
  approved(): Promise<void>;
  /** Uses access outside the approved minimum; throws when denied or disconnected. */
  outside(): Promise<void>;
  /** Resolves with performance.now() when the server ends the connection (real servers only). */
  closed?: Promise<number>;
  /**
   * Sends a statement that carries `secret` over this connection, the way an owner's own tooling
   * would (setting its password, re-authenticating): the server now holds it in its session state,
   * so evidence taken from that state can be checked for it. Real servers only.
   */
  carry?(secret: string): Promise<void>;
  close(): Promise<void>;
}

export interface ProviderFixture {
  name: string;
  provider: IdentityProvider;
  seed(): Promise<Seeded>;
  /** Opens a connection as the identity (a session the provider can see), named `client` (default attacker-tool) from 127.0.0.1. */
  connect(identityId: string, password: string, client?: string): Promise<Connection>;
  /** An identity the provider must refuse to contain. */
  protectedId?: string;
  /** What a worker's configuration needs to reach the same system. */
  config: Partial<CordonConfig>;
  close(): Promise<void>;
}

const password = () => randomBytes(18).toString('base64url');

export function labFixture(): ProviderFixture {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-')), 'directory.json');
  const provider = new LabProvider(file);
  const dir = new LabDirectory(file);
  return {
    name: 'lab',
    provider,
    config: { labFile: file },
    async seed() {
      const identityId = `svc-${randomUUID().slice(0, 8)}`;
      const secret = password();
      await dir.seed({ [identityId]: labIdentity({ credential: { id: 'cred-0', sha256: LabDirectory.hashSecret(secret), rotatedAt: new Date().toISOString() } }) });
      return { identityId, password: secret, keep: ['orders:read'], notHeld: 'not-a-grant-it-had' };
    },
    // The lab has no wire protocol; a "connection" is a session record, checked against grants.
    async connect(identityId, secret, client = 'attacker-tool') {
      await dir.update((s) => {
        const i = s.identities[identityId]!;
        if (!i.enabled || i.credential?.sha256 !== LabDirectory.hashSecret(secret)) throw new Error('lab: login refused');
        i.sessions.push({ id: `sess-${randomUUID().slice(0, 6)}`, device: client, address: '127.0.0.1', startedAt: new Date().toISOString() });
        i.dependents.push({ name: client, address: '127.0.0.1' });
      });
      const need = async (grant: string) => {
        const i = (await dir.read()).identities[identityId]!;
        if (!i.sessions.length) throw new Error('lab: session ended');
        if (!i.grants.includes(grant)) throw new Error(`lab: ${grant} denied`);
      };
      return { approved: () => need('orders:read'), outside: () => need('payments:admin'), close: async () => {} };
    },
    close: () => provider.close(),
  };
}

export function postgresFixture(adminUrl: string, setupUrl: string): ProviderFixture {
  const provider = new PostgresProvider(adminUrl);
  const setup = new pg.Pool({ connectionString: setupUrl, max: 2 });
  setup.on('error', () => undefined); // outage drills stop the server under it
  let world: Promise<void> | undefined;
  // Tables belong to app_owner; Cordon's admin is a member of it so it may revoke their grants.
  const prepare = () =>
    (world ??= setup
      .query(
        `DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN
             CREATE ROLE app_owner NOLOGIN; CREATE ROLE analytics NOLOGIN; GRANT app_owner TO cordon_admin;
             CREATE TABLE orders (id int); CREATE TABLE payments (id int); CREATE TABLE customers (id int);
             INSERT INTO orders VALUES (1); INSERT INTO payments VALUES (1); INSERT INTO customers VALUES (1);
             ALTER TABLE orders OWNER TO app_owner; ALTER TABLE payments OWNER TO app_owner; ALTER TABLE customers OWNER TO app_owner;
             GRANT SELECT ON customers TO analytics;
           END IF;
         END $$`,
      )
      .then(() => undefined));
  return {
    name: 'postgres',
    provider,
    config: { postgresUrl: adminUrl },
    protectedId: 'postgres',
    async seed() {
      await prepare();
      const identityId = `svc_${randomUUID().slice(0, 8)}`;
      const secret = password();
      await setup.query(`CREATE ROLE ${identityId} LOGIN PASSWORD '${secret}'`);
      await setup.query(`GRANT SELECT ON orders TO ${identityId}; GRANT SELECT, INSERT ON payments TO ${identityId}; GRANT analytics TO ${identityId}`);
      return { identityId, password: secret, keep: ['table:public.orders:SELECT'], notHeld: 'table:public.customers:DELETE' };
    },
    async connect(identityId, secret, client = 'attacker-tool') {
      const { client: c, closed, close } = await postgresAs(adminUrl, identityId, secret, client);
      return {
        closed,
        approved: async () => void (await c.query('SELECT count(*) FROM orders')),
        // Two ways beyond the minimum: a direct grant and a group membership.
        outside: async () => void (await c.query('SELECT (SELECT count(*) FROM payments) + (SELECT count(*) FROM customers)')),
        // A role may set its own password; the statement text (literal included) is then the session's last query.
        carry: async (secret) => void (await c.query(`ALTER ROLE CURRENT_USER PASSWORD ${pg.escapeLiteral(secret)}`)),
        close,
      };
    },
    async close() {
      await provider.close();
      await setup.end();
    },
  };
}

export function redisFixture(adminUrl: string, setupUrl: string): ProviderFixture {
  const provider = new RedisProvider(adminUrl);
  const setup = new Redis(setupUrl, { lazyConnect: true });
  setup.on('error', () => undefined); // outage drills stop the server under it
  return {
    name: 'redis',
    provider,
    config: { redisUrl: adminUrl },
    protectedId: 'default',
    async seed() {
      const identityId = `svc-${randomUUID().slice(0, 8)}`;
      const secret = password();
      // Explicit commands: Redis 7.0 prints category rules expanded, and keep lists use printed rules.
      // CLIENT SETNAME lets its clients name themselves, as most client libraries do on connect.
      await setup.call('ACL', 'SETUSER', identityId, 'on', `>${secret}`, '~app:*', '~cache:*', '+get', '+set', '+del', '+ping', '+client|setname');
      await setup.call('ACL', 'SAVE'); // survives a server restart in outage drills
      return { identityId, password: secret, keep: ['+get', '~app:*'], narrowed: ['-@all', '+get', '~app:*'], notHeld: '+flushall' };
    },
    async connect(identityId, secret, client = 'attacker-tool') {
      const { client: c, closed, close } = await redisAs(adminUrl, identityId, secret, client);
      return {
        closed,
        approved: async () => void (await c.get('app:1')),
        outside: async () => void (await c.set('app:1', 'x')),
        // Re-authenticating on the open connection, as a client library does after a password change.
        carry: async (secret) => void (await c.call('AUTH', identityId, secret)),
        close,
      };
    },
    async close() {
      await provider.close();
      setup.disconnect();
    },
  };
}

/** Every fixture this run can offer. A real server missing in CI is an error, not a skip. */
export function availableFixtures(): { fixtures: (() => ProviderFixture)[]; missing: string[] } {
  const e = process.env;
  const fixtures: (() => ProviderFixture)[] = [labFixture];
  const missing: string[] = [];
  if (e.CORDON_POSTGRES_URL && e.CORDON_TEST_POSTGRES_SETUP_URL) fixtures.push(() => postgresFixture(e.CORDON_POSTGRES_URL!, e.CORDON_TEST_POSTGRES_SETUP_URL!));
  else missing.push('postgres');
  if (e.CORDON_REDIS_URL && e.CORDON_TEST_REDIS_SETUP_URL) fixtures.push(() => redisFixture(e.CORDON_REDIS_URL!, e.CORDON_TEST_REDIS_SETUP_URL!));
  else missing.push('redis');
  if (missing.length && inCI()) throw new Error(`provider servers missing in CI: ${missing.join(', ')} (test/services.ts starts them)`);
  return { fixtures, missing };
}
