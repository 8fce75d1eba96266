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
import { KeycloakAdmin, KeycloakProvider, parseIdentity } from '../activities/providers/keycloak';
import { browserSignIn, claims, clientCredentialsGrant, introspect, OidcError, passwordGrant, postgresAs, redisAs, refreshGrant, type TokenSet } from '../scripts/identity-connections';
import { inCI, testKeycloak } from './services';
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
  /**
   * Opens a connection as the identity (a session the provider can see), made by the program
   * `client` (default attacker-tool); attacker-tool connects from 127.0.0.1.
   */
  connect(identityId: string, password: string, client?: string): Promise<Connection>;
  /**
   * The name the provider gives a session that connect(`identityId`, …, `client`) opened, when it
   * is not `client` itself. Most systems show the name the connecting program chose; a Keycloak client's tokens
   * always name the client (client credentials are its own), whoever uses them: there the
   * attacker's program and the owner's differ only in where they connect from.
   */
  nameSeen?(identityId: string, client: string): string;
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

// ---- Keycloak: a user (password grant, refresh token) or a client (client credentials) -----------

export type TestKeycloak = NonNullable<ReturnType<typeof testKeycloak>>;
const APP = 'test-app';
export const APP_REDIRECT = 'http://127.0.0.1/callback';
/** What every seeded identity holds: a realm role kept as the minimum, a high-risk realm role, a high-risk client role, a group. */
export const KEYCLOAK_SEED = { realmRoles: ['orders-reader', 'payments-admin'], clientRoles: { [APP]: ['exports'] }, groups: ['/finance'], keep: ['realm-role:orders-reader'] };

/** Full-power setup on the test realm (master's bootstrap admin client): what a realm administrator does by hand. */
export function keycloakSetup(kc: TestKeycloak) {
  const api = new KeycloakAdmin({ url: kc.url, realm: 'master', clientId: kc.setup.clientId, clientSecret: kc.setup.secret });
  const r = encodeURIComponent(kc.realm);
  const get = <T>(p: string, query?: Record<string, string | boolean>) => api.call<T>('GET', `${r}/${p}`, { query }) as Promise<T>;
  /** Maps the seed's roles and groups to a user (or a service-account user). */
  const grant = async (userId: string) => {
    const roles = await get<{ id: string; name: string }[]>(`users/${userId}/role-mappings/realm/available`);
    await api.call('POST', `${r}/users/${userId}/role-mappings/realm`, { body: roles.filter((x) => KEYCLOAK_SEED.realmRoles.includes(x.name)) });
    for (const [clientId, names] of Object.entries(KEYCLOAK_SEED.clientRoles)) {
      const [client] = await get<{ id: string }[]>('clients', { clientId, search: false });
      const clientRoles = await Promise.all(names.map((n) => get<{ id: string; name: string }>(`clients/${client!.id}/roles/${encodeURIComponent(n)}`)));
      await api.call('POST', `${r}/users/${userId}/role-mappings/clients/${client!.id}`, { body: clientRoles });
    }
    for (const g of KEYCLOAK_SEED.groups) {
      const group = await get<{ id: string }>(`group-by-path/${g.slice(1)}`);
      await api.call('PUT', `${r}/users/${userId}/groups/${group.id}`);
    }
  };
  return {
    api,
    async user(username: string, password: string, o: { grants?: boolean } = {}): Promise<string> {
      await api.call('POST', `${r}/users`, {
        body: { username, enabled: true, email: `${username}@cordon.test`, emailVerified: true, firstName: 'Test', lastName: username, credentials: [{ type: 'password', value: password, temporary: false }] },
      });
      if (o.grants !== false) {
        const [u] = await get<{ id: string }[]>('users', { username, exact: true });
        await grant(u!.id);
      }
      return `${kc.realm}/user:${username}`;
    },
    /** A confidential client with a service account; its tokens name the resource server in `aud`, as introspection requires. */
    async client(clientId: string, secret: string, o: { grants?: boolean } = {}): Promise<string> {
      await api.call('POST', `${r}/clients`, {
        body: {
          clientId, enabled: true, publicClient: false, clientAuthenticatorType: 'client-secret', secret, serviceAccountsEnabled: true,
          standardFlowEnabled: false, directAccessGrantsEnabled: false,
          protocolMappers: [{ name: 'audience-test-api', protocol: 'openid-connect', protocolMapper: 'oidc-audience-mapper', config: { 'included.client.audience': 'test-api', 'access.token.claim': 'true', 'introspection.token.claim': 'true' } }],
        },
      });
      if (o.grants !== false) {
        const [c] = await get<{ id: string }[]>('clients', { clientId, search: false });
        const sa = await get<{ id: string }>(`clients/${c!.id}/service-account-user`);
        await grant(sa.id);
      }
      return `${kc.realm}/client:${clientId}`;
    },
  };
}

const roles = (jwt: string) => {
  const c = claims(jwt);
  return [...(c.realm_access?.roles ?? []), ...Object.entries(c.resource_access ?? {}).flatMap(([client, r]) => r.roles.map((x) => `${client}:${x}`))];
};

/**
 * Signs a user in as its owner would: the direct grant, or the browser when Keycloak wants a new
 * password first; through the OAuth client `client` (the realm's test-app, attacker-tool and
 * billing-app are alike), which Keycloak names as the session's client.
 */
export async function keycloakSignIn(kc: TestKeycloak, username: string, password: string, client = APP): Promise<TokenSet> {
  try {
    return await passwordGrant(kc.issuer, client, username, password);
  } catch (err) {
    if (err instanceof OidcError && /not fully set up/.test(err.description)) return browserSignIn(kc.issuer, client, APP_REDIRECT, username, password);
    throw err;
  }
}

/**
 * A client's token, checked by introspection. A client whose not-before was set this very second
 * gets a token Keycloak refuses until the next one: like a real client after a 401, it asks again.
 */
export async function keycloakClientToken(kc: TestKeycloak, clientId: string, secret: string, from?: string): Promise<TokenSet> {
  for (let attempt = 0; ; attempt++) {
    const t = await clientCredentialsGrant(kc.issuer, clientId, secret, from);
    if ((await introspect(kc.issuer, kc.introspector, t.access_token)).active || attempt === 2) return t;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function keycloakFixture(kc: TestKeycloak, kind: 'user' | 'client'): ProviderFixture {
  const provider = new KeycloakProvider({ url: kc.url, realm: kc.realm, clientId: kc.admin.clientId, clientSecret: kc.admin.secret, highRiskRoles: kc.highRiskRoles });
  const setup = keycloakSetup(kc);
  /** Access is what a resource server accepts: an active token (introspection) that carries the role. */
  const need = async (token: string, role: string) => {
    const info = await introspect(kc.issuer, kc.introspector, token);
    if (!info.active) throw new Error('keycloak: token inactive');
    if (!roles(token).includes(role)) throw new Error(`keycloak: ${role} not in the token`);
  };
  // A client identity: every program holding its secret gets tokens in the client's own name, so
  // each program connects from a loopback address of its own (attacker-tool from 127.0.0.1), as
  // the attacker's machine and the owner's service would.
  const addresses = new Map<string, string>([['attacker-tool', '127.0.0.1']]);
  const addressOf = (client: string) => {
    if (!addresses.has(client)) addresses.set(client, `127.0.0.${addresses.size + 1}`);
    return addresses.get(client)!;
  };
  return {
    name: `keycloak (${kind})`,
    provider,
    config: { keycloak: { url: kc.url, realm: kc.realm, clientId: kc.admin.clientId, clientSecret: kc.admin.secret, highRiskRoles: kc.highRiskRoles } },
    protectedId: `${kc.realm}/client:${kc.admin.clientId}`,
    async seed() {
      const name = `${kind === 'user' ? 'u' : 'svc'}-${randomUUID().slice(0, 8)}`;
      const secret = password();
      const identityId = kind === 'user' ? await setup.user(name, secret) : await setup.client(name, secret);
      return { identityId, password: secret, keep: KEYCLOAK_SEED.keep, notHeld: 'realm-role:never-granted' };
    },
    async connect(identityId, secret, client = 'attacker-tool') {
      const { name } = parseIdentity(identityId)!;
      if (kind === 'client') {
        // A client holds a token; using it means presenting it to the resource server.
        const t = await keycloakClientToken(kc, name, secret, addressOf(client));
        return { approved: () => need(t.access_token, 'orders-reader'), outside: () => need(t.access_token, 'payments-admin'), close: async () => {} };
      }
      // A user holds a refresh token of the OAuth client it signed in through (the program's own,
      // as an attacker's tool would be); using it means refreshing (the session must be alive),
      // then presenting the new access token.
      let tokens = await keycloakSignIn(kc, name, secret, client);
      const use = async (role: string) => {
        tokens = await refreshGrant(kc.issuer, client, tokens.refresh_token!);
        await need(tokens.access_token, role);
      };
      return {
        approved: () => use('orders-reader'),
        outside: () => use('payments-admin'),
        close: async () => {
          await fetch(`${kc.issuer}/protocol/openid-connect/logout`, { method: 'POST', body: new URLSearchParams({ client_id: client, refresh_token: tokens.refresh_token! }) }).catch(() => undefined);
        },
      };
    },
    ...(kind === 'client' ? { nameSeen: (identityId: string) => parseIdentity(identityId)!.name } : {}),
    close: () => provider.close(),
  };
}

/** Every fixture this run can offer. A real server missing in CI is an error, not a skip. */
export function availableFixtures(o: { keycloak?: boolean } = {}): { fixtures: (() => ProviderFixture)[]; missing: string[] } {
  const e = process.env;
  const fixtures: (() => ProviderFixture)[] = [labFixture];
  const missing: string[] = [];
  if (e.CORDON_POSTGRES_URL && e.CORDON_TEST_POSTGRES_SETUP_URL) fixtures.push(() => postgresFixture(e.CORDON_POSTGRES_URL!, e.CORDON_TEST_POSTGRES_SETUP_URL!));
  else missing.push('postgres');
  if (e.CORDON_REDIS_URL && e.CORDON_TEST_REDIS_SETUP_URL) fixtures.push(() => redisFixture(e.CORDON_REDIS_URL!, e.CORDON_TEST_REDIS_SETUP_URL!));
  else missing.push('redis');
  if (o.keycloak) {
    const kc = testKeycloak();
    if (kc) fixtures.push(() => keycloakFixture(kc, 'user'), () => keycloakFixture(kc, 'client'));
    else missing.push('keycloak');
  }
  if (missing.length && inCI()) throw new Error(`provider servers missing in CI: ${missing.join(', ')} (test/services.ts starts them)`);
  return { fixtures, missing };
}
