// Connections authenticated *as* an identity, the way its owner (or an attacker holding its
// password) connects: for the tests and the benchmark. `closed` resolves with performance.now()
// when the server ends the connection, which is how both see a suppression land.
import pg from 'pg';
import Redis from 'ioredis';

export interface AsIdentity<C> {
  client: C;
  closed: Promise<number>;
  close(): Promise<void>;
}

/** Connects as `user` to the server of `adminUrl` (host and port only; never its credentials). */
export async function postgresAs(adminUrl: string, user: string, password: string, applicationName: string): Promise<AsIdentity<pg.Client>> {
  const u = new URL(adminUrl);
  const client = new pg.Client({ host: u.hostname, port: Number(u.port || 5432), user, password, database: 'postgres', application_name: applicationName, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined); // a terminated backend surfaces on the next query instead
  const closed = new Promise<number>((r) => client.once('end', () => r(performance.now())));
  await client.connect();
  return { client, closed, close: () => client.end().catch(() => undefined) };
}

export async function redisAs(adminUrl: string, user: string, password: string, connectionName: string): Promise<AsIdentity<Redis>> {
  const u = new URL(adminUrl);
  const client = new Redis({ host: u.hostname, port: Number(u.port || 6379), username: user, password, connectionName, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, enableReadyCheck: false, retryStrategy: () => null });
  client.on('error', () => undefined);
  const closed = new Promise<number>((r) => client.once('close', () => r(performance.now())));
  await client.connect();
  // ioredis connects even when AUTH fails; the first command tells whether we are in
  // (NOPERM: logged in but narrowed; NOAUTH/WRONGPASS: not logged in).
  await client.ping().catch((err: Error) => {
    if (/^NOPERM/.test(err.message)) return;
    client.disconnect();
    throw err;
  });
  return { client, closed, close: async () => client.disconnect() };
}
