// PostgreSQL roles as non-human identities. Identity id: `role`, or `role@database` to scope
// privileges to one database (a role's password, LOGIN, connection limit and sessions belong to
// the whole cluster, so those steps act in every database). Grants are written the way they are revoked:
//   member:<role>          table:<schema>.<table>:<PRIVILEGE>     sequence:<schema>.<seq>:<PRIVILEGE>
//   schema:<schema>:<PRIVILEGE>    database:<db>:<PRIVILEGE>      (a trailing * = with grant/admin option)
// Names are quote_ident()ed as PostgreSQL prints them. Closing a door never closes open sessions
// in PostgreSQL (NOLOGIN, a new password, REVOKE), so every such step also ends the backends.
import pg from 'pg';
import type { ActionResult, Dependent, EvidenceKind, IdentitySnapshot, Receipt, Scope, SuppressionAction } from '../../workflows/schemas';
import { cancellation, dependentsExcept, notApplicable, outcome, receiptNumber, refuse, sessionAsDependent, validGrants } from './common';
import { IdentityNotFoundError, IncompleteError, InvalidInputError, type EvidenceArtifact, type IdentityProvider } from './provider';
import { scramSha256Verifier } from './scram';

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)`;
const PRIVILEGE = '(SELECT|INSERT|UPDATE|DELETE|TRUNCATE|REFERENCES|TRIGGER|USAGE|CREATE|CONNECT|TEMPORARY)';
const GRANT = new RegExp(`^(?:member:(${IDENT})|(table|sequence):(${IDENT}\\.${IDENT}):${PRIVILEGE}|(schema|database):(${IDENT}):${PRIVILEGE})(\\*?)$`);

const NOTATION = 'member:<role>, table:<schema>.<table>:<PRIVILEGE>, sequence:<schema>.<sequence>:<PRIVILEGE>, schema:<schema>:<PRIVILEGE>, database:<db>:<PRIVILEGE>, a trailing * for the grant/admin option';
const isGrant = (g: string) => GRANT.test(g);

/** A grant string as SQL: the object clause for GRANT/REVOKE. Anything else is refused. */
function parseGrant(g: string): { kind: 'member'; role: string; option: boolean } | { kind: 'privilege'; privilege: string; on: string; option: boolean } {
  const m = GRANT.exec(g);
  if (!m) throw new InvalidInputError(`postgres: "${g}" is not a grant in Cordon's notation (${NOTATION})`);
  const option = m[8] === '*';
  if (m[1]) return { kind: 'member', role: m[1], option };
  if (m[2]) return { kind: 'privilege', privilege: m[4]!, on: `${m[2] === 'table' ? 'TABLE' : 'SEQUENCE'} ${m[3]}`, option };
  return { kind: 'privilege', privilege: m[7]!, on: `${m[5]!.toUpperCase()} ${m[6]}`, option };
}

const grantSql = (g: string, role: string) => {
  const p = parseGrant(g);
  return p.kind === 'member'
    ? `GRANT ${p.role} TO ${role}${p.option ? ' WITH ADMIN OPTION' : ''}`
    : `GRANT ${p.privilege} ON ${p.on} TO ${role}${p.option ? ' WITH GRANT OPTION' : ''}`;
};

/** One grant the identity holds, with the role that made it and whether Cordon may act as that role. */
interface GrantRow {
  g: string;
  grantor: string;
  member: boolean;
  can_act: boolean;
}

/**
 * A privilege is revoked only by the role that granted it (REVOKE as anyone else leaves it with a
 * WARNING), so Cordon acts as that grantor for the statement. Memberships are revoked as Cordon
 * (CREATEROLE may revoke any non-superuser membership); one that survives is caught by the check
 * after restrict.
 */
function revokeStatements(row: GrantRow, role: string): string[] {
  const p = parseGrant(row.g);
  if (p.kind === 'member') return [`REVOKE ${p.role} FROM ${role}`];
  return [`SET LOCAL ROLE ${row.grantor}`, `REVOKE ${p.privilege} ON ${p.on} FROM ${role} GRANTED BY ${row.grantor}`, 'RESET ROLE'];
}

// Every grant with its grantor. Database privileges are those on the database the identity is scoped to.
const GRANTS_SQL = `
  SELECT x.g, COALESCE(quote_ident(gr.rolname), x.grantor::text) AS grantor, x.member,
         CASE WHEN gr.oid IS NULL THEN false ELSE pg_has_role(session_user, gr.oid, 'MEMBER') END AS can_act
    FROM (
      SELECT 'member:' || quote_ident(r.rolname) || CASE WHEN m.admin_option THEN '*' ELSE '' END AS g, m.grantor, true AS member
        FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = $1
      UNION ALL
      SELECT CASE c.relkind WHEN 'S' THEN 'sequence:' ELSE 'table:' END || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
             || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, a.grantor, false
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
       WHERE a.grantee = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
      UNION ALL
      SELECT 'schema:' || quote_ident(n.nspname) || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, a.grantor, false
        FROM pg_namespace n, aclexplode(n.nspacl) a WHERE a.grantee = $1
      UNION ALL
      SELECT 'database:' || quote_ident(d.datname) || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, a.grantor, false
        FROM pg_database d, aclexplode(d.datacl) a WHERE a.grantee = $1 AND d.datname = current_database()
    ) x LEFT JOIN pg_roles gr ON gr.oid = x.grantor
   ORDER BY x.g, 2`;

/** Errors a statement will give again however often it is retried: the grant stays, and says why. */
const PERMANENT = new Set(['42501', '2BP01', '0LP01']); // insufficient privilege, dependent privileges, invalid grant operation
const sqlState = (err: unknown) => (err as { code?: string }).code;

/**
 * Suppression's login block is recorded on the role itself, in its comment, as the connection
 * limit it replaced: a retried suppression (its first result lost) must not take the block for the
 * role's own setting. Lifting the block removes the note and leaves the comment as it was.
 */
const BLOCK_NOTE = /\n?\[cordon: login block; connection limit before it: (-?\d+)\]$/;
const blockNote = (comment: string | null) => {
  const m = comment ? BLOCK_NOTE.exec(comment) : null;
  return m ? Number(m[1]) : undefined;
};
const withNote = (comment: string | null, limit: number) => `${comment ? `${comment}\n` : ''}[cordon: login block; connection limit before it: ${limit}]`;
const withoutNote = (comment: string | null) => (comment ? comment.replace(BLOCK_NOTE, '') : '') || null;

/** `role` or `role@database`; anything else (an empty role or database) cannot be acted on. */
function parseIdentity(identityId: string): { name: string; database?: string } {
  const at = identityId.lastIndexOf('@');
  if (at < 0) return { name: identityId };
  const [name, database] = [identityId.slice(0, at), identityId.slice(at + 1)];
  if (!name || !database) throw new InvalidInputError(`postgres: identity id "${identityId}" is not written role or role@database`);
  return { name, database };
}

interface SessionRow {
  pid: number;
  datname: string | null;
  application_name: string;
  client_addr: string | null;
  backend_start: Date;
}
const sessionOf = (s: SessionRow) => sessionAsDependent(s.application_name, s.client_addr, s.backend_start);

export interface PostgresOptions {
  /** How long a statement waits for a lock before it fails (ms). */
  lockTimeoutMs?: number;
  /**
   * How long any statement may run (ms): well under the activity's start-to-close timeout, so a
   * stuck statement has failed (and rolled back) before a retry or a rollback starts.
   */
  statementTimeoutMs?: number;
}
interface Role {
  oid: number;
  name: string;
  quoted: string;
  database?: string;
  canLogin: boolean;
  connLimit: number;
  superuser: boolean;
  comment: string | null;
}

/** Admin connections per database: one per suppression action a containment runs at once, and one more. */
const POOL = 4;

export class PostgresProvider implements IdentityProvider {
  readonly name = 'postgres';
  private readonly pools = new Map<string, pg.Pool>();
  private readonly admin: URL;
  private readonly timeouts: Required<PostgresOptions>;
  /** Evidence reads in flight, by what they read: the kinds of one capture, taken at once, share them. */
  private readonly reading = new Map<string, Promise<unknown>>();

  constructor(url: string, options: PostgresOptions = {}) {
    this.admin = new URL(url);
    this.timeouts = { lockTimeoutMs: 5000, statementTimeoutMs: 15_000, ...options };
  }

  private get adminDatabase(): string {
    return decodeURIComponent(this.admin.pathname.slice(1)) || 'postgres';
  }

  /** One small pool per database the identities are scoped to; every statement is bounded in time. */
  private pool(database?: string): pg.Pool {
    const db = database ?? this.adminDatabase;
    let pool = this.pools.get(db);
    if (!pool) {
      const url = new URL(this.admin);
      url.pathname = `/${encodeURIComponent(db)}`;
      pool = new pg.Pool({
        connectionString: url.toString(),
        connectionTimeoutMillis: 5000,
        // The admin database's connections stay open (warm() opens them at start): a containment's
        // suppression actions run in parallel, and the first one after a quiet week pays no handshake.
        max: POOL,
        min: db === this.adminDatabase ? POOL : 0,
        idleTimeoutMillis: 60_000,
        application_name: 'cordon',
        lock_timeout: this.timeouts.lockTimeoutMs,
        statement_timeout: this.timeouts.statementTimeoutMs,
      });
      // An idle connection dropped by a restarting server must not crash the worker; the next query reconnects.
      pool.on('error', () => undefined);
      this.pools.set(db, pool);
    }
    return pool;
  }

  /**
   * Runs `fn` on one connection. If the activity is cancelled meanwhile, the statement running on
   * it is cancelled and the connection is thrown away, so nothing it started can land later.
   */
  private async withClient<T>(database: string | undefined, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const signal = cancellation();
    signal?.throwIfAborted();
    const pool = this.pool(database);
    const c = await pool.connect();
    const pid = (c as unknown as { processID: number }).processID;
    const cancel = () => void pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await fn(c);
    } finally {
      signal?.removeEventListener('abort', cancel);
      c.release(signal?.aborted ? true : undefined);
    }
  }

  /** Statements in one transaction: all of them or none, and never committed for a cancelled activity. */
  private transaction<T>(database: string | undefined, body: (run: (sql: string) => Promise<void>) => Promise<T>): Promise<T> {
    return this.withClient(database, async (c) => {
      const signal = cancellation();
      const run = async (sql: string) => {
        signal?.throwIfAborted();
        await c.query(sql);
      };
      await c.query('BEGIN');
      try {
        const out = await body(run);
        signal?.throwIfAborted();
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  private exec(database: string | undefined, sql: string): Promise<unknown> {
    return this.withClient(database, (c) => c.query(sql));
  }

  private async role(identityId: string): Promise<Role | undefined> {
    const { name, database } = parseIdentity(identityId);
    let rows: { oid: number; rolcanlogin: boolean; rolconnlimit: number; rolsuper: boolean; comment: string | null }[];
    try {
      ({ rows } = await this.pool(database).query(
        `SELECT oid::int, rolcanlogin, rolconnlimit, rolsuper, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1`,
        [name],
      ));
    } catch (err) {
      if (sqlState(err) === '3D000') return undefined; // role@database whose database does not exist
      throw err;
    }
    const r = rows[0];
    return r && { oid: r.oid, name, quoted: pg.escapeIdentifier(name), database, canLogin: r.rolcanlogin, connLimit: r.rolconnlimit, superuser: r.rolsuper, comment: r.comment };
  }

  /** The role, or an error that says why Cordon will not or cannot act on it. */
  private async mutable(identityId: string): Promise<Role> {
    const r = await this.role(identityId);
    if (!r) throw new IdentityNotFoundError(this.name, identityId);
    refuse(this.name, identityId, r.superuser ? 'it is a superuser (contain it by hand)' : r.name === decodeURIComponent(this.admin.username) ? "it is Cordon's own admin role" : r.name.startsWith('pg_') ? 'it is a predefined role' : undefined);
    return r;
  }

  private async grantRows(r: Role): Promise<GrantRow[]> {
    return (await this.pool(r.database).query<GrantRow>(GRANTS_SQL, [r.oid])).rows;
  }

  private async grants(r: Role): Promise<string[]> {
    return [...new Set((await this.grantRows(r)).map((x) => x.g))];
  }

  /** The role's sessions in every database: its password and login reach them all. */
  private async sessions(r: Role): Promise<SessionRow[]> {
    const { rows } = await this.pool(r.database).query<SessionRow>(
      'SELECT pid, datname, application_name, host(client_addr) AS client_addr, backend_start FROM pg_stat_activity WHERE usesysid = $1 ORDER BY backend_start',
      [r.oid],
    );
    return rows;
  }

  /** Ends the role's backends in every database (or the one `pid`), waits until they are gone, and says which. */
  private async terminate(r: Role, pid?: string): Promise<Dependent[]> {
    const db = this.pool(r.database);
    const { rows } = await db.query<SessionRow & { signalled: boolean }>(
      `SELECT pid, datname, application_name, host(client_addr) AS client_addr, backend_start, pg_terminate_backend(pid) AS signalled FROM pg_stat_activity
        WHERE usesysid = $1 AND ($2::int IS NULL OR pid = $2) AND pid <> pg_backend_pid()`,
      [r.oid, pid === undefined ? null : Number(pid)],
    );
    const ended = rows.filter((x) => x.signalled);
    // A signalled backend takes a moment to exit; the step is only done once it has (bounded, unlike waiting per backend).
    for (const deadline = Date.now() + 5000; ended.length && Date.now() < deadline; ) {
      const { rows: left } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])', [ended.map((x) => x.pid)]);
      if (!left[0]!.n) break;
      await new Promise((ok) => setTimeout(ok, 20));
    }
    return ended.map(sessionOf);
  }

  /**
   * The connection limit that lifting the login block restores, or undefined to leave the limit
   * alone: the receipt's (the limit before the block), else the note on the role, else, for a
   * block from before receipts, -1 as Cordon always did. No block in place (limit not 0): nothing.
   */
  private liftTo(r: Role, receipt?: Receipt): number | undefined {
    if (r.connLimit !== 0) return undefined;
    const noted = blockNote(r.comment);
    const to = receipt ? (receiptNumber(receipt, 'connectionLimitBefore') ?? noted) : (noted ?? -1);
    if (to !== undefined && to < -1) throw new InvalidInputError(`postgres: ${to} is not a connection limit to restore`);
    return to;
  }

  /** Lifts suppression's login block exactly; says what it did, or undefined when there was nothing to do. */
  private async liftBlock(r: Role, receipt?: Receipt): Promise<string | undefined> {
    const to = this.liftTo(r, receipt);
    const noted = blockNote(r.comment) !== undefined;
    const change = to !== undefined && to !== 0;
    if (!change && !noted) return undefined;
    await this.transaction(r.database, async (run) => {
      if (change) await run(`ALTER ROLE ${r.quoted} CONNECTION LIMIT ${to}`);
      if (noted) await run(`COMMENT ON ROLE ${r.quoted} IS ${withoutNote(r.comment) === null ? 'NULL' : pg.escapeLiteral(withoutNote(r.comment)!)}`);
    });
    return change ? `login block lifted (CONNECTION LIMIT ${to}, as before the block)` : 'login block note removed (the role was at CONNECTION LIMIT 0 before it)';
  }

  async inspect(identityId: string): Promise<IdentitySnapshot> {
    const r = await this.role(identityId);
    if (!r) return { exists: false, enabled: false, grants: [], sessions: 0 };
    const [grants, sessions] = await Promise.all([this.grants(r), this.sessions(r)]);
    return { exists: true, enabled: r.canLogin, grants, sessions: sessions.length };
  }

  async suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult & { ended?: Dependent[] }> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'a role has no tokens or API tiers; its sessions are its access');
    if (scope?.sessionId !== undefined && !/^[1-9]\d{0,9}$/.test(scope.sessionId)) throw new InvalidInputError(`postgres: scope.sessionId is a backend pid, not "${scope.sessionId}"`);
    const r = await this.mutable(identityId);
    // Block new logins first, so the attacker cannot reconnect between the kill and the block.
    // The block lasts until the credential is rotated or the containment is rolled back; the
    // receipt (and a note on the role, for retries) keeps the limit it replaced.
    const noted = blockNote(r.comment);
    const before = noted ?? r.connLimit;
    const block = r.connLimit !== 0;
    if (block) {
      await this.transaction(r.database, async (run) => {
        if (noted === undefined) await run(`COMMENT ON ROLE ${r.quoted} IS ${pg.escapeLiteral(withNote(r.comment, before))}`);
        await run(`ALTER ROLE ${r.quoted} CONNECTION LIMIT 0`);
      });
    }
    const ended = await this.terminate(r, scope?.sessionId);
    const result = outcome('revoke-sessions', [block && `new logins blocked (CONNECTION LIMIT 0, was ${before})`, ended.length > 0 && `terminated ${ended.length} backend(s) across all databases`], {
      connectionLimitBefore: before,
    });
    return ended.length ? { ...result, ended } : result;
  }

  async liftSuppression(identityId: string, action: SuppressionAction, receipt?: Receipt): Promise<ActionResult> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'nothing was blocked');
    const r = await this.mutable(identityId);
    const lifted = await this.liftBlock(r, receipt);
    return outcome('lift:revoke-sessions', [lifted && `${lifted}; ended backends stay ended`]);
  }

  /**
   * `read`, or the same read already in flight for another kind of this identity's evidence. Only
   * evidence shares: it is a capture of the moment, and a read that began a few milliseconds
   * earlier is as true of it, while a suppression's own reads must see its writes.
   */
  private shared<T>(key: string, read: () => Promise<T>): Promise<T> {
    let p = this.reading.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read().finally(() => this.reading.delete(key));
      this.reading.set(key, p);
    }
    return p;
  }

  async evidence(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact> {
    const r = await this.shared(`role ${identityId}`, () => this.role(identityId));
    if (!r) throw new IdentityNotFoundError(this.name, identityId);
    const db = this.pool(r.database);
    // Sessions and auth events are both read from pg_stat_activity: one query serves the two.
    const sessions = () =>
      this.shared(`sessions ${identityId}`, async () => {
        // Query text is left out: it may hold literals such as passwords.
        const { rows } = await db.query(
          `SELECT pid, datname, application_name, client_addr::text, client_port, backend_start, xact_start, state_change, state, wait_event_type, wait_event, backend_type,
                  md5(query) AS query_md5 FROM pg_stat_activity WHERE usesysid = $1 ORDER BY backend_start`,
          [r.oid],
        );
        return rows;
      });
    const body: Record<EvidenceKind, () => Promise<unknown>> = {
      sessions,
      // PostgreSQL keeps authentication events in its server log only; live backends show when each connected.
      'auth-events': async () => ({ source: 'pg_stat_activity.backend_start (log_connections holds the rest, server-side)', connections: await sessions() }),
      'token-metadata': async () => ({ note: 'PostgreSQL roles have no tokens' }),
      // The database its pool connects to, which is what current_database() answered.
      grants: async () => ({ grants: await this.grantRows(r), database: r.database ?? this.adminDatabase }),
      'config-snapshot': async () =>
        (
          await db.query(
            `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, rolconfig,
                    shobj_description(oid, 'pg_authid') AS comment
               FROM pg_roles WHERE oid = $1`,
            [r.oid],
          )
        ).rows[0],
    };
    return { contentType: 'application/json', body: JSON.stringify({ identityId, capturedAt: new Date().toISOString(), [kind]: await body[kind]() }) };
  }

  async restrict(identityId: string, keep: string[]): Promise<ActionResult> {
    validGrants(this.name, keep, isGrant, NOTATION); // a misspelt minimum would otherwise revoke what it meant to keep
    const r = await this.mutable(identityId);
    const excess = (await this.grantRows(r)).filter((x) => !keep.includes(x.g));
    const why = new Map<GrantRow, string>();
    const revoked = new Set<string>();
    // One transaction; each grant in a savepoint, so one Cordon may not revoke leaves the rest revoked.
    await this.transaction(r.database, async (run) => {
      for (const row of excess) {
        if (!row.member && !row.can_act) {
          why.set(row, `Cordon's admin is not a member of ${row.grantor}`);
          continue;
        }
        await run('SAVEPOINT cordon_grant');
        try {
          for (const sql of revokeStatements(row, r.quoted)) await run(sql);
          await run('RELEASE SAVEPOINT cordon_grant');
          revoked.add(row.g);
        } catch (err) {
          if (!PERMANENT.has(sqlState(err) ?? '')) throw err; // a timeout, an outage, a cancellation: all or nothing, retried
          await run('ROLLBACK TO SAVEPOINT cordon_grant');
          why.set(row, (err as Error).message);
        }
      }
    });
    // A session that already ran SET ROLE keeps the revoked group's access: end them all.
    const ended = await this.terminate(r);
    // Never report done on faith: whatever is left beyond keep is a failed step, named with its grantor.
    const left = (await this.grantRows(r)).filter((x) => !keep.includes(x.g));
    if (left.length) {
      const reason = (x: GrantRow) => [...why].find(([k]) => k.g === x.g && k.grantor === x.grantor)?.[1] ?? 'still present after its REVOKE';
      throw new IncompleteError(
        `postgres: restrict left ${left.map((x) => `${x.g} (granted by ${x.grantor}: ${reason(x)})`).join(', ')} beyond the approved minimum` +
          `${revoked.size ? `; revoked ${[...revoked].join(', ')}` : ''}; terminated ${ended.length} backend(s)`,
      );
    }
    return outcome('restrict', [revoked.size > 0 && `revoked ${[...revoked].join(', ')}`, ended.length > 0 && `terminated ${ended.length} backend(s)`]);
  }

  async restore(identityId: string, grants: string[]): Promise<ActionResult> {
    validGrants(this.name, grants, isGrant, NOTATION); // refuse a bad receipt before changing anything
    const r = await this.mutable(identityId);
    const rows = await this.grantRows(r);
    const current = new Set(rows.map((x) => x.g));
    const revoke = rows.filter((x) => !grants.includes(x.g));
    const add = grants.filter((g) => !current.has(g));
    try {
      await this.transaction(r.database, async (run) => {
        for (const row of revoke) for (const sql of revokeStatements(row, r.quoted)) await run(sql);
        for (const g of add) await run(grantSql(g, r.quoted));
      });
    } catch (err) {
      if (PERMANENT.has(sqlState(err) ?? '')) throw new IncompleteError(`postgres: restore of "${identityId}" changed nothing: ${(err as Error).message}`);
      throw err;
    }
    return outcome('restore', [add.length > 0 && `granted ${add.join(', ')}`, revoke.length > 0 && `revoked ${[...new Set(revoke.map((x) => x.g))].join(', ')}`]);
  }

  /** Whether `secret` already logs the role in: the only read-back PostgreSQL allows a non-superuser. */
  private async logsIn(r: Role, secret: string): Promise<boolean> {
    const c = new pg.Client({
      host: this.admin.hostname,
      port: Number(this.admin.port || 5432),
      user: r.name,
      password: secret,
      database: r.database ?? this.adminDatabase,
      connectionTimeoutMillis: 5000,
      application_name: 'cordon-verify',
    });
    try {
      await c.connect();
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  async setSecret(identityId: string, secret: string, loginBlock?: Receipt): Promise<ActionResult> {
    const r = await this.mutable(identityId);
    const inPlace = await this.logsIn(r, secret);
    if (!inPlace) await this.exec(r.database, `ALTER ROLE ${r.quoted} PASSWORD ${pg.escapeLiteral(scramSha256Verifier(secret))}`);
    // Always end sessions: a retry after a crash must still cut the sessions the old password opened.
    const ended = await this.terminate(r);
    // The old password is dead, so the login block suppression put up has done its job: back to
    // exactly the limit it replaced (a role at 0 on purpose stays at 0).
    const lifted = await this.liftBlock(r, loginBlock);
    return outcome('rotate', [!inPlace && 'password replaced (SCRAM-SHA-256 verifier)', ended.length > 0 && `terminated ${ended.length} backend(s)`, lifted]);
  }

  async setEnabled(identityId: string, enabled: boolean): Promise<ActionResult> {
    const r = await this.mutable(identityId);
    const flip = r.canLogin !== enabled;
    if (flip) await this.exec(r.database, `ALTER ROLE ${r.quoted} ${enabled ? 'LOGIN' : 'NOLOGIN'}`);
    // NOLOGIN stops new logins only; open sessions would carry on.
    const ended = enabled ? [] : await this.terminate(r);
    return outcome(enabled ? 'enable' : 'disable', [flip && (enabled ? 'LOGIN restored' : 'NOLOGIN set'), ended.length > 0 && `terminated ${ended.length} backend(s)`]);
  }

  async dependents(identityId: string, exclude?: Dependent[]): Promise<Dependent[]> {
    const r = await this.role(identityId);
    if (!r) throw new IdentityNotFoundError(this.name, identityId);
    return dependentsExcept((await this.sessions(r)).map(sessionOf), exclude);
  }

  async warm(): Promise<void> {
    // Every connection a containment's parallel actions use, each with the catalog lookups they make.
    await Promise.all(Array.from({ length: POOL }, () => this.withClient(undefined, (c) => c.query("SELECT rolname FROM pg_roles WHERE rolname = 'cordon-warm-up'"))));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
