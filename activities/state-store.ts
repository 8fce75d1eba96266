// Where the vault and the evidence store keep their records: a table of write-once values, in
// files beside the worker's data (one host) or in PostgreSQL (several workers). Write-once is
// the whole contract: the first writer of a key wins and every later writer gets its value, so a
// rotation retried on any worker or process finds the secret the first attempt minted.
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

export interface WriteOnceTable {
  /** Where the records are, for messages; never holds a password. */
  readonly where: string;
  /** Stores `value` under `key` unless a value is there; returns the value stored under `key`. */
  putIfAbsent(key: string, value: string): Promise<string>;
  get(key: string): Promise<string | undefined>;
  keys(): Promise<string[]>;
}

const KEY = /^[A-Za-z0-9._-]{1,128}$/;
function checkKey(key: string): string {
  if (!KEY.test(key) || key.startsWith('.')) throw new Error(`invalid state key "${key}"`);
  return key;
}

const isCode = (err: unknown, code: string) => (err as NodeJS.ErrnoException).code === code;

/**
 * One file per key. Put-if-absent across processes without a lock: the value is written to a
 * private temporary file, then hard-linked to its name, which fails if the name exists. A reader
 * sees a whole file or none, and a writer killed half-way leaves no lock behind.
 */
export class FileTable implements WriteOnceTable {
  readonly dir: string;
  constructor(
    dir: string,
    /** Spread files over subfolders named by the key's first two characters (many keys). */
    private readonly fanout = false,
  ) {
    this.dir = resolve(dir);
  }

  get where(): string {
    return this.dir;
  }

  /** The file that holds `key`. */
  path(key: string): string {
    checkKey(key);
    return this.fanout ? join(this.dir, key.slice(0, 2), `${key}.json`) : join(this.dir, `${key}.json`);
  }

  async putIfAbsent(key: string, value: string): Promise<string> {
    const file = this.path(key);
    // No read first: the link below refuses a name that exists, and only then is it read. (A
    // failed read costs an error with its stack, on every new key.)
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await this.write(tmp, value);
    try {
      await link(tmp, file);
      return value;
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
      return (await this.get(key))!; // stored already (an earlier put, or another writer first): its value is the value
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Writes a new private file; its folder is made when the write finds it missing (the first put, or after a removal). */
  private async write(file: string, value: string): Promise<void> {
    const create = () => writeFile(file, value, { mode: 0o600, flag: 'wx' });
    try {
      await create();
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw err;
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      await create();
    }
  }

  async get(key: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(key), 'utf8');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async keys(): Promise<string[]> {
    const names = await readdir(this.dir, { recursive: this.fanout }).catch((err) => (isCode(err, 'ENOENT') ? [] : Promise.reject(err)));
    return names
      .map((n) => /(?:^|\/)([^/]+)\.json$/.exec(n)?.[1])
      .filter((k): k is string => !!k && KEY.test(k))
      .sort();
  }
}

/**
 * A PostgreSQL database shared by the workers: one table per store, created on first use. Only
 * what the stores put there is stored (the vault's ciphertext, evidence envelopes).
 */
export class PgState {
  private readonly pool: pg.Pool;
  private readonly ready = new Map<string, Promise<void>>();
  /** The URL without user or password, for messages and evidence URIs. */
  readonly where: string;

  constructor(url: string) {
    const u = new URL(url);
    this.where = `postgres://${u.host}${u.pathname}`;
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 10_000,
      application_name: 'cordon-state',
      // A stuck statement fails the activity (which retries) instead of hanging it.
      statement_timeout: 10_000,
      lock_timeout: 5000,
    });
    // An idle connection the server closed (a restart) must not crash the worker; the next
    // query reconnects or fails its activity, which retries.
    this.pool.on('error', () => undefined);
  }

  table(name: 'vault' | 'evidence'): WriteOnceTable {
    const table = `cordon_${name}`;
    const ensure = () => {
      let p = this.ready.get(table);
      if (!p) {
        p = this.create(table);
        this.ready.set(table, p);
        p.catch(() => this.ready.delete(table)); // try again on the next use
      }
      return p;
    };
    const query = async (sql: string, params: unknown[]) => {
      await ensure();
      return this.pool.query<{ key: string; value: string }>(sql, params);
    };
    const where = `${this.where} table ${table}`;
    return {
      where,
      async putIfAbsent(key, value) {
        checkKey(key);
        // Under READ COMMITTED, ON CONFLICT waits for a concurrent insert of the key to commit, so
        // the read-back finds the winner's row.
        const ins = await query(`INSERT INTO ${table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING value`, [key, value]);
        if (ins.rows[0]) return ins.rows[0].value;
        const row = (await query(`SELECT value FROM ${table} WHERE key = $1`, [key])).rows[0];
        if (!row) throw new Error(`${where}: ${key} conflicted but cannot be read back`);
        return row.value;
      },
      async get(key) {
        return (await query(`SELECT value FROM ${table} WHERE key = $1`, [checkKey(key)])).rows[0]?.value;
      },
      async keys() {
        return (await query(`SELECT key FROM ${table} ORDER BY key`, [])).rows.map((r) => r.key);
      },
    };
  }

  /** Creates the table once; an advisory lock keeps two workers' first use from racing in the catalog. */
  private async create(table: string): Promise<void> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT pg_advisory_xact_lock(hashtext('cordon-state-schema'))`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${table} (key text PRIMARY KEY, value text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw new Error(`cannot create ${table} in ${this.where}: ${(err as Error).message}`);
    } finally {
      c.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
