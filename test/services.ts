// Provider servers the suite needs (PostgreSQL, Redis), started once per run on loopback with
// their own ports and folders. Missing binaries are installed when possible; if they still are
// missing, CI fails loudly and a user's machine skips those tests with a message saying why.
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
