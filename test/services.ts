// Provider servers the suite needs (PostgreSQL, Redis), started once per run on loopback with
// their own ports and folders. Missing binaries are installed when possible; if they still are
// missing, CI fails loudly and a user's machine skips those tests with a message saying why.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { installMissing, startPostgres, startRedis, type LocalService } from '../scripts/local-services';

export interface TestServices {
  env: Record<string, string>;
  stop(): Promise<void>;
}

export const inCI = () => Boolean(process.env.CI || process.env.CORDON_CI);

export async function startTestServices(): Promise<TestServices> {
  const missing = installMissing();
  if (missing.length) {
    const why = `cannot run the PostgreSQL/Redis provider tests: ${missing.join(', ')} not installed (apt-get install ${missing.join(' ')})`;
    if (inCI()) throw new Error(why);
    console.warn(`cordon test: SKIPPING provider tests on this machine: ${why}`);
  }
  const started: LocalService[] = [];
  const env: Record<string, string> = {};
  try {
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
    await Promise.all(started.map((s) => s.stop()));
    throw err;
  }
  return { env, stop: async () => void (await Promise.all(started.map((s) => s.stop()))) };
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
