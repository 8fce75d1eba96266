// Provider servers the suite needs (PostgreSQL, Redis, Keycloak), started once per run on loopback
// with their own ports and folders; Keycloak (about 10 s) starts while the others do. Missing
// binaries are installed when possible; if they still are missing, CI fails loudly and a user's
// machine skips those tests with a message saying why.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { installMissing, startPostgres, startRedis, type LocalService } from '../scripts/local-services';
import { keycloakMissing, startKeycloak, TEST_OPERATORS, TEST_REALM, type LocalKeycloak, type TestOperator } from '../scripts/local-keycloak';
import { passwordGrant } from '../scripts/identity-connections';

export interface TestServices {
  env: Record<string, string>;
  stop(): Promise<void>;
}

export const inCI = () => Boolean(process.env.CI || process.env.CORDON_CI);

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** Keycloak, or undefined (with the reason printed) where a user's machine cannot run it. */
async function keycloakIfPossible(): Promise<LocalKeycloak | undefined> {
  const missing = keycloakMissing();
  try {
    if (missing.length) throw new Error(`${missing.join(', ')} not installed (Debian: apt-get install openjdk-17-jre-headless maven)`);
    const kc = await startKeycloak();
    console.log(`cordon test: Keycloak up in ${kc.startedInMs} ms (JVM RSS ${mib(kc.memory().rss)})`);
    return kc;
  } catch (err) {
    const why = `cannot run the Keycloak tests: ${(err as Error).message}`;
    if (inCI()) throw new Error(why);
    console.warn(`cordon test: SKIPPING Keycloak tests on this machine: ${why}`);
    return undefined;
  }
}

export async function startTestServices(): Promise<TestServices> {
  const keycloak = keycloakIfPossible();
  keycloak.catch(() => undefined); // handled below; never an unhandled rejection meanwhile
  const started: LocalService[] = [];
  const env: Record<string, string> = {};
  try {
    const missing = installMissing();
    if (missing.length) {
      const why = `cannot run the PostgreSQL/Redis provider tests: ${missing.join(', ')} not installed (apt-get install ${missing.join(' ')})`;
      if (inCI()) throw new Error(why);
      console.warn(`cordon test: SKIPPING provider tests on this machine: ${why}`);
    }
    if (!missing.includes('postgresql')) {
      const pg = await startPostgres();
      started.push(pg);
      Object.assign(env, { CORDON_POSTGRES_URL: pg.adminUrl, CORDON_TEST_POSTGRES_SETUP_URL: pg.setupUrl });
      console.log(`cordon test: PostgreSQL up in ${pg.startedInMs} ms`);
    }
    if (!missing.includes('redis-server')) {
      const redis = await startRedis();
      started.push(redis);
      Object.assign(env, { CORDON_REDIS_URL: redis.adminUrl, CORDON_TEST_REDIS_SETUP_URL: redis.setupUrl });
      console.log(`cordon test: Redis up in ${redis.startedInMs} ms`);
    }
  } catch (err) {
    await Promise.all([...started.map((s) => s.stop()), keycloak.then((k) => k?.stop(), () => undefined)]);
    throw err;
  }
  let kc: LocalKeycloak | undefined;
  try {
    kc = await keycloak;
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()));
    throw err;
  }
  if (kc) Object.assign(env, kc.env());
  return {
    env,
    stop: async () => {
      if (kc) console.log(`cordon test: Keycloak JVM peak RSS ${mib(kc.memory().peak)}`);
      await Promise.all([...started.map((s) => s.stop()), kc?.stop()]);
    },
  };
}

/** The run's Keycloak as test files see it (undefined when this machine skips it); or the one whose `env()` is given. */
export function testKeycloak(e: Record<string, string | undefined> = process.env) {
  if (!e.CORDON_KEYCLOAK_URL || !e.CORDON_TEST_KEYCLOAK_ISSUER || !e.CORDON_TEST_KEYCLOAK_SETUP_SECRET) return undefined;
  const issuer = e.CORDON_TEST_KEYCLOAK_ISSUER;
  return {
    url: e.CORDON_KEYCLOAK_URL,
    realm: TEST_REALM,
    /** `http://127.0.0.1:PORT/realms/cordon-test`: what operator tokens carry as `iss`. */
    issuer,
    admin: { clientId: e.CORDON_KEYCLOAK_CLIENT_ID!, secret: e.CORDON_KEYCLOAK_CLIENT_SECRET! },
    highRiskRoles: (e.CORDON_KEYCLOAK_HIGH_RISK_ROLES ?? '').split(',').filter(Boolean),
    setup: { clientId: e.CORDON_TEST_KEYCLOAK_SETUP_CLIENT_ID!, secret: e.CORDON_TEST_KEYCLOAK_SETUP_SECRET },
    intake: { clientId: 'cordon-intake', secret: e.CORDON_TEST_KEYCLOAK_INTAKE_SECRET! },
    introspector: { clientId: 'test-api', secret: e.CORDON_TEST_KEYCLOAK_INTROSPECT_SECRET! },
    /** An operator's access token (password grant on the public client `cordon-cli`; `aud` holds `cordon`). */
    operatorToken: async (who: TestOperator) => (await passwordGrant(issuer, 'cordon-cli', who, TEST_OPERATORS[who].password)).access_token,
  };
}

/**
 * A database of its own on the run's private PostgreSQL, owned by a login role of its own: what an
 * operator gives Cordon as CORDON_STATE_URL. Needs CORDON_TEST_POSTGRES_SETUP_URL.
 */
export async function stateDatabase(): Promise<string> {
  const setupUrl = process.env.CORDON_TEST_POSTGRES_SETUP_URL;
  if (!setupUrl) throw new Error('CORDON_TEST_POSTGRES_SETUP_URL is not set (test/run.ts starts the private PostgreSQL)');
  const name = `cordon_state_${process.pid}_${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('base64url');
  const setup = new pg.Client({ connectionString: setupUrl });
  await setup.connect();
  try {
    await setup.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
    await setup.query(`CREATE DATABASE ${name} OWNER ${name}`);
  } finally {
    await setup.end();
  }
  const port = /[?&]port=(\d+)/.exec(setupUrl)?.[1];
  return `postgres://${name}:${password}@127.0.0.1:${port}/${name}`;
}
