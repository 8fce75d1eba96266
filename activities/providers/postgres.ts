// PostgreSQL roles as non-human identities. Identity id: `role`, or `role@database` to scope
// sessions and privileges to one database. Grants are written the way they are revoked:
//   member:<role>          table:<schema>.<table>:<PRIVILEGE>     sequence:<schema>.<seq>:<PRIVILEGE>
//   schema:<schema>:<PRIVILEGE>    database:<db>:<PRIVILEGE>      (a trailing * = with grant/admin option)
// Names are quote_ident()ed as PostgreSQL prints them. Closing a door never closes open sessions
// in PostgreSQL (NOLOGIN, a new password, REVOKE), so every such step also ends the backends.
import pg from 'pg';
import type { ActionResult, Dependent, EvidenceKind, IdentitySnapshot, Scope, SuppressionAction } from '../../workflows/schemas';
import { narrow, notApplicable, outcome, refuse } from './common';
import { IdentityNotFoundError, type EvidenceArtifact, type IdentityProvider } from './provider';
import { scramSha256Verifier } from './scram';

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)`;
const PRIVILEGE = '(SELECT|INSERT|UPDATE|DELETE|TRUNCATE|REFERENCES|TRIGGER|USAGE|CREATE|CONNECT|TEMPORARY)';
const GRANT = new RegExp(`^(?:member:(${IDENT})|(table|sequence):(${IDENT}\\.${IDENT}):${PRIVILEGE}|(schema|database):(${IDENT}):${PRIVILEGE})(\\*?)$`);

/** A grant string as SQL: the object clause for GRANT/REVOKE. Anything else is refused. */
function parseGrant(g: string): { kind: 'member'; role: string; option: boolean } | { kind: 'privilege'; privilege: string; on: string; option: boolean } {
  const m = GRANT.exec(g);
  if (!m) throw new Error(`postgres: "${g}" is not a grant in Cordon's notation (member:<role>, table:<schema>.<table>:<PRIVILEGE>, …)`);
  const option = m[8] === '*';
  if (m[1]) return { kind: 'member', role: m[1], option };
  if (m[2]) return { kind: 'privilege', privilege: m[4]!, on: `${m[2] === 'table' ? 'TABLE' : 'SEQUENCE'} ${m[3]}`, option };
  return { kind: 'privilege', privilege: m[7]!, on: `${m[5]!.toUpperCase()} ${m[6]}`, option };
}

const revokeSql = (g: string, role: string) => {
  const p = parseGrant(g);
  return p.kind === 'member' ? `REVOKE ${p.role} FROM ${role}` : `REVOKE ${p.privilege} ON ${p.on} FROM ${role}`;
};
const grantSql = (g: string, role: string) => {
  const p = parseGrant(g);
  return p.kind === 'member'
    ? `GRANT ${p.role} TO ${role}${p.option ? ' WITH ADMIN OPTION' : ''}`
    : `GRANT ${p.privilege} ON ${p.on} TO ${role}${p.option ? ' WITH GRANT OPTION' : ''}`;
};

const GRANTS_SQL = `
  SELECT DISTINCT g FROM (
    SELECT 'member:' || quote_ident(r.rolname) || CASE WHEN m.admin_option THEN '*' ELSE '' END AS g
      FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = $1
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence:' ELSE 'table:' END || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
           || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
     WHERE a.grantee = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
    UNION ALL
    SELECT 'schema:' || quote_ident(n.nspname) || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
      FROM pg_namespace n, aclexplode(n.nspacl) a WHERE a.grantee = $1
    UNION ALL
    SELECT 'database:' || quote_ident(d.datname) || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
      FROM pg_database d, aclexplode(d.datacl) a WHERE a.grantee = $1 AND d.datname = current_database()
  ) x ORDER BY g`;

interface Role {
  oid: number;
  name: string;
  quoted: string;
  database?: string;
  canLogin: boolean;
  connLimit: number;
  superuser: boolean;
}

export class PostgresProvider implements IdentityProvider {
  readonly name = 'postgres';
  private readonly pools = new Map<string, pg.Pool>();
  private readonly admin: URL;

  constructor(url: string) {
    this.admin = new URL(url);
  }

  private get adminDatabase(): string {
    return decodeURIComponent(this.admin.pathname.slice(1)) || 'postgres';
  }

  /** One small pool per database the identities are scoped to. */
  private pool(database?: string): pg.Pool {
    const db = database ?? this.adminDatabase;
    let pool = this.pools.get(db);
    if (!pool) {
      const url = new URL(this.admin);
      url.pathname = `/${encodeURIComponent(db)}`;
      pool = new pg.Pool({ connectionString: url.toString(), max: 4, connectionTimeoutMillis: 5000, idleTimeoutMillis: 10_000, application_name: 'cordon' });
      // An idle connection dropped by a restarting server must not crash the worker; the next query reconnects.
      pool.on('error', () => undefined);
      this.pools.set(db, pool);
    }
    return pool;
  }

  private async role(identityId: string): Promise<Role | undefined> {
    const at = identityId.lastIndexOf('@');
    const [name, database] = at > 0 ? [identityId.slice(0, at), identityId.slice(at + 1)] : [identityId, undefined];
    const { rows } = await this.pool(database).query<{ oid: number; rolcanlogin: boolean; rolconnlimit: number; rolsuper: boolean }>(
      'SELECT oid::int, rolcanlogin, rolconnlimit, rolsuper FROM pg_roles WHERE rolname = $1',
      [name],
    );
    const r = rows[0];
    return r && { oid: r.oid, name, quoted: pg.escapeIdentifier(name), database, canLogin: r.rolcanlogin, connLimit: r.rolconnlimit, superuser: r.rolsuper };
  }

  /** The role, or an error that says why Cordon will not or cannot act on it. */
  private async mutable(identityId: string): Promise<Role> {
    const r = await this.role(identityId);
    if (!r) throw new IdentityNotFoundError(this.name, identityId);
    refuse(this.name, identityId, r.superuser ? 'it is a superuser (contain it by hand)' : r.name === decodeURIComponent(this.admin.username) ? "it is Cordon's own admin role" : r.name.startsWith('pg_') ? 'it is a predefined role' : undefined);
    return r;
  }

  private async grants(r: Role): Promise<string[]> {
    return (await this.pool(r.database).query<{ g: string }>(GRANTS_SQL, [r.oid])).rows.map((x) => x.g);
  }

  private async sessions(r: Role) {
    const { rows } = await this.pool(r.database).query<{ pid: number; datname: string; application_name: string; client_addr: string | null; backend_start: Date; state: string | null }>(
      `SELECT pid, datname, application_name, client_addr::text, backend_start, state FROM pg_stat_activity
        WHERE usename = $1 AND ($2::text IS NULL OR datname = $2) ORDER BY backend_start`,
      [r.name, r.database ?? null],
    );
    return rows;
  }

  /** Ends the role's backends and waits until they are gone (PostgreSQL 14+ takes a timeout). */
  private async terminate(r: Role, pid?: string): Promise<number> {
    const { rows } = await this.pool(r.database).query<{ n: number }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))::int AS n FROM pg_stat_activity
        WHERE usename = $1 AND ($2::text IS NULL OR datname = $2) AND ($3::int IS NULL OR pid = $3) AND pid <> pg_backend_pid()`,
      [r.name, r.database ?? null, pid === undefined ? null : Number(pid)],
    );
    return rows[0]!.n;
  }

  private async setConnectionLimit(r: Role, limit: number): Promise<boolean> {
    if (r.connLimit === limit) return false;
    await this.pool(r.database).query(`ALTER ROLE ${r.quoted} CONNECTION LIMIT ${limit}`);
    return true;
  }

  async inspect(identityId: string): Promise<IdentitySnapshot> {
    const r = await this.role(identityId);
    if (!r) return { exists: false, enabled: false, grants: [], sessions: 0 };
    const [grants, sessions] = await Promise.all([this.grants(r), this.sessions(r)]);
    return { exists: true, enabled: r.canLogin, grants, sessions: sessions.length };
  }

  async suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'a role has no tokens or API tiers; its sessions are its access');
    const r = await this.mutable(identityId);
    if (scope?.sessionId !== undefined && !/^\d+$/.test(scope.sessionId)) throw new Error(`postgres: scope.sessionId is a backend pid, not "${scope.sessionId}"`);
    // Block new logins first, so the attacker cannot reconnect between the kill and the block.
    // The block lasts until the credential is rotated or the containment is rolled back.
    const blocked = await this.setConnectionLimit(r, 0);
    const ended = await this.terminate(r, scope?.sessionId);
    return outcome('revoke-sessions', [blocked && 'new logins blocked (CONNECTION LIMIT 0)', ended > 0 && `terminated ${ended} backend(s)`]);
  }

  async liftSuppression(identityId: string, action: SuppressionAction): Promise<ActionResult> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'nothing was blocked');
    const r = await this.mutable(identityId);
    return outcome('lift:revoke-sessions', [(await this.setConnectionLimit(r, -1)) && 'new logins allowed again (CONNECTION LIMIT -1); ended backends stay ended']);
  }

  async evidence(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact> {
    const r = await this.role(identityId);
    if (!r) throw new IdentityNotFoundError(this.name, identityId);
    const db = this.pool(r.database);
    const sessions = async () => {
      // Query text is left out: it may hold literals such as passwords.
      const { rows } = await db.query(
        `SELECT pid, datname, application_name, client_addr::text, client_port, backend_start, xact_start, state_change, state, wait_event_type, wait_event, backend_type,
                md5(query) AS query_md5 FROM pg_stat_activity WHERE usename = $1 AND ($2::text IS NULL OR datname = $2) ORDER BY backend_start`,
        [r.name, r.database ?? null],
      );
      return rows;
    };
    const body: Record<EvidenceKind, () => Promise<unknown>> = {
      sessions,
      // PostgreSQL keeps authentication events in its server log only; live backends show when each connected.
      'auth-events': async () => ({ source: 'pg_stat_activity.backend_start (log_connections holds the rest, server-side)', connections: await sessions() }),
      'token-metadata': async () => ({ note: 'PostgreSQL roles have no tokens' }),
      grants: async () => ({ grants: await this.grants(r), database: (await db.query('SELECT current_database() AS d')).rows[0].d }),
      'config-snapshot': async () =>
        (
          await db.query(
            `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, rolconfig
               FROM pg_roles WHERE oid = $1`,
            [r.oid],
          )
        ).rows[0],
    };
    return { contentType: 'application/json', body: JSON.stringify({ identityId, capturedAt: new Date().toISOString(), [kind]: await body[kind]() }) };
  }

  /** Applies `statements` in one transaction: all of a restrict or restore, or none of it. */
  private async transaction(r: Role, statements: string[]): Promise<void> {
    if (!statements.length) return;
    const c = await this.pool(r.database).connect();
    try {
      await c.query('BEGIN');
      for (const s of statements) await c.query(s);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async restrict(identityId: string, keep: string[]): Promise<ActionResult> {
    const r = await this.mutable(identityId);
    const { removed } = narrow(await this.grants(r), keep);
    await this.transaction(r, removed.map((g) => revokeSql(g, r.quoted)));
    // A session that already ran SET ROLE keeps the revoked group's access: end them all.
    const ended = await this.terminate(r);
    return outcome('restrict', [removed.length > 0 && `revoked ${removed.join(', ')}`, ended > 0 && `terminated ${ended} backend(s)`]);
  }

  async restore(identityId: string, grants: string[]): Promise<ActionResult> {
    grants.forEach(parseGrant); // refuse a bad receipt before changing anything
    const r = await this.mutable(identityId);
    const current = await this.grants(r);
    const revoke = current.filter((g) => !grants.includes(g));
    const add = grants.filter((g) => !current.includes(g));
    await this.transaction(r, [...revoke.map((g) => revokeSql(g, r.quoted)), ...add.map((g) => grantSql(g, r.quoted))]);
    return outcome('restore', [add.length > 0 && `granted ${add.join(', ')}`, revoke.length > 0 && `revoked ${revoke.join(', ')}`]);
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

  async setSecret(identityId: string, secret: string): Promise<ActionResult> {
    const r = await this.mutable(identityId);
    const inPlace = await this.logsIn(r, secret);
    if (!inPlace) await this.pool(r.database).query(`ALTER ROLE ${r.quoted} PASSWORD ${pg.escapeLiteral(scramSha256Verifier(secret))}`);
    // Always end sessions: a retry after a crash must still cut the sessions the old password opened.
    const ended = await this.terminate(r);
    // The old password is dead, so the login block suppression put up has done its job.
    const unblocked = r.connLimit === 0 && (await this.setConnectionLimit(r, -1));
    return outcome('rotate', [!inPlace && 'password replaced (SCRAM-SHA-256 verifier)', ended > 0 && `terminated ${ended} backend(s)`, unblocked && 'login block lifted']);
  }

  async setEnabled(identityId: string, enabled: boolean): Promise<ActionResult> {
    const r = await this.mutable(identityId);
    const flip = r.canLogin !== enabled;
    if (flip) await this.pool(r.database).query(`ALTER ROLE ${r.quoted} ${enabled ? 'LOGIN' : 'NOLOGIN'}`);
    // NOLOGIN stops new logins only; open sessions would carry on.
    const ended = enabled ? 0 : await this.terminate(r);
    return outcome(enabled ? 'enable' : 'disable', [flip && (enabled ? 'LOGIN restored' : 'NOLOGIN set'), ended > 0 && `terminated ${ended} backend(s)`]);
  }

  async dependents(identityId: string): Promise<Dependent[]> {
    const r = await this.role(identityId);
    if (!r) throw new IdentityNotFoundError(this.name, identityId);
    const byClient = new Map<string, Dependent>();
    for (const s of await this.sessions(r)) {
      const d = { name: s.application_name || 'unnamed client', address: s.client_addr ?? 'local socket', lastSeen: s.backend_start.toISOString() };
      byClient.set(`${d.name}@${d.address}`, d);
    }
    return [...byClient.values()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
