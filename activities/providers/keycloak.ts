// Keycloak users (humans) and confidential clients with a service account (machines), through
// the admin REST API.
//
// Identity ids:  <realm>/user:<username>      e.g. cordon-test/user:alice
//                <realm>/client:<clientId>    e.g. cordon-test/client:billing-sync
// Grants (restrict, restore, block-high-risk-apis), as direct mappings of the user or of the
// client's service-account user:
//                realm-role:<role>            client-role:<clientId>:<role>           group:<path>
// (a ':' or '%' inside the clientId is written %3A / %25; role names and paths are verbatim).
//
// Plain HTTP, not @keycloak/keycloak-admin-client, on measured grounds: the library is 13
// packages and 6.9 MB (kiota, OpenTelemetry), ESM-only, so this CommonJS build (TypeScript
// `module: Node16`) cannot import it without TS1479 and a module-system change; it keeps the realm
// in mutable client state shared by concurrent activities and does not renew its token. What
// Cordon needs is about twenty documented endpoints and one client-credentials token, below.
import { createHash, timingSafeEqual } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import type { ActionResult, Dependent, EvidenceKind, IdentitySnapshot, Receipt, Scope, SuppressionAction } from '../../workflows/schemas';
import { BackgroundLane } from './background-lane';
import { dependentsExcept, notApplicable, outcome, refuse, sameList, stripSecrets } from './common';
import { IdentityNotFoundError, NotSupportedError, type EvidenceArtifact, type IdentityProvider } from './provider';

export interface KeycloakConnection {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The realm Cordon's admin client lives in (its token endpoint). */
  realm: string;
  clientId: string;
  clientSecret: string;
  /** Evidence's requests in flight at once (EVIDENCE_IN_FLIGHT when unset). */
  evidenceInFlight?: number;
}

export interface KeycloakOptions extends KeycloakConnection {
  /** Grants block-high-risk-apis removes, in the grant notation above. */
  highRiskRoles?: string[];
}

/** An admin API answer other than success, 403 and (when allowed) 404. */
export class KeycloakHttpError extends Error {
  constructor(
    readonly status: number,
    what: string,
    detail: string,
  ) {
    super(`keycloak: ${what} answered HTTP ${status}${detail ? ` (${detail})` : ''}`);
  }
}

/** A path under /admin/realms/ with every interpolated value encoded as one segment. */
const path = (parts: TemplateStringsArray, ...values: (string | number)[]) => parts.reduce((acc, p, i) => acc + p + (i < values.length ? encodeURIComponent(String(values[i])) : ''), '');

/**
 * How long a successful GET's answer may serve a later read of the same URL that allows it (none
 * of this client's writes between): evidence beside a suppression, which follows it in the same
 * workflow task.
 */
const RECENT_MS = 2000;

/** Forgets `map`'s entry for `key` after RECENT_MS, unless it has been replaced meanwhile. */
const forgetLater = <K, V>(map: Map<K, V>, key: K, value: V) => setTimeout(() => map.get(key) === value && map.delete(key), RECENT_MS).unref();

/**
 * Evidence's requests in flight to Keycloak at once, per admin client, by default. A client's
 * evidence is mostly event searches, the heaviest reads Keycloak serves; under a burst they met
 * every other containment's cut in Keycloak's threads, on the same cores.
 */
export const EVIDENCE_IN_FLIGHT = 2;

/** An admin API answer, before the caller reads it. */
interface Answer {
  status: number;
  text: string;
}

/** One HTTP request to Keycloak, and its answer (with its Date header, Keycloak's clock). */
export interface Exchange {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}
export type Transport = (x: Exchange) => Promise<Answer & { date?: string }>;

/**
 * undici's request rather than fetch: a containment makes 9 to 15 admin calls, and fetch's
 * WHATWG streams and abort signals cost about twice its CPU per call (measured beside a local
 * server: ~460 against ~200 µs per call, server included). Its timeouts bound the wait for the
 * headers and then for the body, each `timeoutMs`, where fetch's signal bounded the whole call.
 */
const undiciTransport: Transport = async (x) => {
  const res = await request(x.url, { method: x.method as Dispatcher.HttpMethod, headers: x.headers, body: x.body, headersTimeout: x.timeoutMs, bodyTimeout: x.timeoutMs });
  const date = res.headers.date;
  return { status: res.statusCode, date: typeof date === 'string' ? date : undefined, text: await res.body.text() };
};

/** A GET sent, and (once 2xx) answered, with the write epoch it was sent in. */
interface Reading {
  epoch: number;
  sentAt: number;
  answer: Promise<Answer>;
  answeredAt?: number;
  /** Sends it now if it still waits in the background lane. */
  promote(): void;
}

/** The admin REST API with a client-credentials token, renewed before it expires (or on a 401). */
export class KeycloakAdmin {
  private token?: { value: string; until: number };
  /** GETs by URL, in flight or answered in the last RECENT_MS, with when and in which write epoch they were sent (see call()). */
  private readonly reading = new Map<string, Reading>();
  /** Advanced when one of this client's writes starts and when it ends. */
  private epoch = 0;
  private pending?: Promise<string>;
  /** Keycloak's own clock (from Date headers), for not-before values that must beat its tokens' iat. */
  private skewMs = 0;

  /** Evidence waits here while evidenceInFlight of its requests are out; a cut never does. */
  readonly lane: BackgroundLane;

  /** Every request goes through this; tests replace it to watch or delay what is sent. */
  transport: Transport = undiciTransport;

  constructor(readonly conn: KeycloakConnection) {
    this.lane = new BackgroundLane(conn.evidenceInFlight ?? EVIDENCE_IN_FLIGHT);
  }

  private async accessToken(): Promise<string> {
    if (this.token && Date.now() < this.token.until) return this.token.value;
    this.pending ??= (async () => {
      const res = await this.transport({
        method: 'POST',
        url: new URL(`${this.conn.url}/realms/${encodeURIComponent(this.conn.realm)}/protocol/openid-connect/token`),
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: this.conn.clientId, client_secret: this.conn.clientSecret }).toString(),
        timeoutMs: 10_000,
      });
      let body: { access_token?: string; expires_in?: number; error?: string } = {};
      try {
        body = JSON.parse(res.text) as typeof body;
      } catch {
        body = {};
      }
      // Wrong credentials or realm: no retry fixes that. A server error may pass.
      if (res.status === 400 || res.status === 401 || res.status === 404) {
        throw new NotSupportedError(`keycloak: Cordon's admin client "${this.conn.clientId}" cannot sign in to realm "${this.conn.realm}" (${body.error ?? res.status}): check CORDON_KEYCLOAK_REALM, _CLIENT_ID and _CLIENT_SECRET`);
      }
      if (res.status < 200 || res.status >= 300 || !body.access_token) throw new KeycloakHttpError(res.status, 'the token endpoint', body.error ?? '');
      const life = (body.expires_in ?? 60) * 1000;
      this.token = { value: body.access_token, until: Date.now() + Math.max(life - 15_000, life / 2) };
      return body.access_token;
    })().finally(() => (this.pending = undefined));
    return this.pending;
  }

  /** Signs in ahead of the first call (the token is then reused until shortly before it expires). */
  async warm(): Promise<void> {
    await this.accessToken();
  }

  /** Keycloak's time now, in seconds. */
  serverSeconds(): number {
    return Math.floor((Date.now() + this.skewMs) / 1000);
  }

  /**
   * Calls `method path` under /admin/realms/. 404 is `undefined` when `allowMissing`; 403 means the
   * admin client lacks a role, which no retry fixes.
   *
   * A GET joins the same GET already in flight from this client when none of this client's writes
   * has started or ended since it was sent: a containment's suppressions look the identity up at
   * the same moment, and each lookup cost Keycloak a search. The epoch keeps read-your-writes: a
   * read after a write (a note read back) never takes an answer sent before it.
   *
   * `sentSince` (a performance.now() time) is for reads that want a snapshot taken since then and
   * write nothing themselves: evidence captured beside a suppression. Such a read takes the same
   * GET sent at or after that time, in flight or answered in the last RECENT_MS, across writes: an
   * answer sent before a write is the identity as it was during the suppression, which evidence
   * running a moment earlier would have read itself. (Under the epoch rule, the not-before a
   * client's suppression writes, or any other containment's write, sent evidence back to Keycloak.)
   *
   * Evidence's GETs wait in the background lane; a caller outside it that joins one still
   * waiting there sends it at once.
   */
  async call<T>(
    method: string,
    p: string,
    o: { body?: unknown; text?: string; query?: Record<string, string | number | boolean | undefined>; allowMissing?: boolean; sentSince?: number } = {},
  ): Promise<T | undefined> {
    const url = new URL(`${this.conn.url}/admin/realms/${p}`);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    let answer: Answer;
    if (method === 'GET') {
      const seen = this.reading.get(url.href);
      const joins = (r: Reading) => r.answeredAt === undefined && r.epoch === this.epoch;
      const snapshot = (r: Reading) => o.sentSince !== undefined && r.sentAt >= o.sentSince && (r.answeredAt === undefined || performance.now() - r.answeredAt <= RECENT_MS);
      if (seen && (joins(seen) || snapshot(seen))) {
        if (!this.lane.inBackground()) seen.promote();
        answer = await seen.answer;
      } else {
        const place = this.lane.admit();
        const mine: Reading = { epoch: this.epoch, sentAt: performance.now(), answer: place.ready.then(() => this.send(method, url, o)).finally(place.release), promote: place.promote };
        this.reading.set(url.href, mine);
        const forget = () => this.reading.get(url.href) === mine && this.reading.delete(url.href);
        try {
          answer = await mine.answer;
        } catch (err) {
          forget();
          throw err;
        }
        if (answer.status >= 200 && answer.status < 300) {
          mine.answeredAt = performance.now();
          forgetLater(this.reading, url.href, mine);
        } else forget();
      }
    } else {
      this.epoch++;
      answer = await this.send(method, url, o).finally(() => this.epoch++);
    }
    const { status, text } = answer;
    // Each caller parses its own copy: callers change what they are given.
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
    if (status === 404 && o.allowMissing) return undefined;
    if (status === 403) {
      throw new NotSupportedError(`keycloak: Cordon's admin client may not ${method} ${url.pathname} (403): it lacks a realm-management role (see the README's provider section) or the realm is not its to manage`);
    }
    // Keycloak's error bodies name the problem ({"error": …, "errorMessage": …}); they never echo a secret we sent.
    let detail = '';
    try {
      const e = JSON.parse(text) as { error?: string; errorMessage?: string; error_description?: string };
      detail = (e.errorMessage ?? e.error_description ?? e.error ?? '').slice(0, 200);
    } catch {
      detail = '';
    }
    throw new KeycloakHttpError(status, `${method} ${url.pathname}`, detail);
  }

  /** One request, with one fresh token after a 401 (revoked or expired early). */
  private async send(method: string, url: URL, o: { body?: unknown; text?: string }): Promise<Answer> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.transport({
        method,
        url,
        headers: {
          authorization: `Bearer ${await this.accessToken()}`,
          accept: 'application/json',
          ...(o.body !== undefined ? { 'content-type': 'application/json' } : o.text !== undefined ? { 'content-type': 'text/plain' } : {}),
        },
        body: o.body !== undefined ? JSON.stringify(o.body) : o.text,
        timeoutMs: 15_000,
      });
      const date = Date.parse(res.date ?? '');
      if (!Number.isNaN(date)) this.skewMs = date - Date.now();
      if (res.status === 401 && attempt === 0) {
        this.token = undefined;
        continue;
      }
      return { status: res.status, text: res.text };
    }
  }
}

// ---- identities and grants ------------------------------------------------------------------

export interface IdentityRef {
  realm: string;
  kind: 'user' | 'client';
  name: string;
}

export function parseIdentity(identityId: string): IdentityRef | undefined {
  const m = /^([^/\s]+)\/(user|client):(\S+)$/.exec(identityId);
  return m ? { realm: m[1]!, kind: m[2] as 'user' | 'client', name: m[3]! } : undefined;
}

type Grant = { type: 'realm-role'; role: string } | { type: 'client-role'; clientId: string; role: string } | { type: 'group'; path: string };

const encodeClientId = (c: string) => c.replace(/%/g, '%25').replace(/:/g, '%3A');

export function formatGrant(g: Grant): string {
  if (g.type === 'realm-role') return `realm-role:${g.role}`;
  if (g.type === 'client-role') return `client-role:${encodeClientId(g.clientId)}:${g.role}`;
  return `group:${g.path}`;
}

export function parseGrant(text: string): Grant {
  let m = /^realm-role:(.+)$/.exec(text);
  if (m) return { type: 'realm-role', role: m[1]! };
  m = /^client-role:([^:]+):(.+)$/.exec(text);
  if (m) return { type: 'client-role', clientId: decodeURIComponent(m[1]!), role: m[2]! };
  m = /^group:(\/.*[^/])$/.exec(text);
  if (m) return { type: 'group', path: m[1]! };
  throw new NotSupportedError(`keycloak: "${text}" is not a grant in Cordon's notation (realm-role:<role>, client-role:<clientId>:<role>, group:</path>)`);
}

interface RoleRep {
  id: string;
  name: string;
}
interface UserRep {
  id: string;
  username: string;
  enabled: boolean;
  firstName?: string;
  lastName?: string;
  email?: string;
  requiredActions?: string[];
  notBefore?: number;
  /** ms since the epoch, by Keycloak's clock; absent for some federated users. */
  createdTimestamp?: number;
  attributes?: Record<string, string[]>;
  [k: string]: unknown;
}
interface ClientRep {
  id: string;
  clientId: string;
  enabled: boolean;
  publicClient?: boolean;
  bearerOnly?: boolean;
  serviceAccountsEnabled?: boolean;
  clientAuthenticatorType?: string;
  notBefore?: number;
  attributes?: Record<string, string>;
  [k: string]: unknown;
}
interface SessionRep {
  id: string;
  ipAddress: string;
  start: number;
  lastAccess: number;
  clients: Record<string, string>;
}
interface EventRep {
  time: number;
  type: string;
  clientId?: string;
  userId?: string;
  sessionId?: string;
  ipAddress?: string;
  error?: string;
  details?: Record<string, string>;
}
interface AdminEventRep {
  time: number;
  operationType: string;
  resourceType: string;
  resourcePath: string;
  authDetails?: Record<string, string>;
  error?: string;
}
interface ConsentRep {
  clientId: string;
  grantedClientScopes?: string[];
  createdDate?: number;
  lastUpdatedDate?: number;
  additionalGrants?: { client: string; key: string }[];
}
interface CredentialRep {
  id: string;
  type: string;
  userLabel?: string;
  createdDate?: number;
}

/** A direct mapping the identity holds, with what removing it takes. */
type Held = { grant: string } & ({ type: 'realm-role'; role: RoleRep } | { type: 'client-role'; clientUuid: string; role: RoleRep } | { type: 'group'; groupId: string });

/** An identity as found: the user, or the client and its service-account user. */
interface Found {
  id: string;
  ref: IdentityRef;
  user?: UserRep;
  client?: ClientRep;
}

// Step-up asks for both at the next sign-in; a temporary password issued by Cordon needs UPDATE_PASSWORD.
const STEP_UP_ACTIONS = ['CONFIGURE_TOTP', 'UPDATE_PASSWORD'];
// Client-credentials tokens have no session; a grant seen within this window may still be live
// (Keycloak's default access-token lifespan is 5 minutes; the realm's own value needs view-realm).
const TOKEN_WINDOW_S = 3600;
const CORDON_LABEL = 'cordon:';
/**
 * Cordon's notes on the user (or the client's service-account user), for suppressions whose
 * receipt a retry must rebuild after the first attempt's result was lost: what
 * block-high-risk-apis removed, and the required actions the user had before force-step-up. Grant
 * names and action names only, never a secret; lifting removes them. The realm's user profile
 * must let administrators keep them (see the README); without that, suppression still acts and
 * says the note is missing.
 */
const NOTE = { blocked: 'cordon.blocked-roles', stepUp: 'cordon.step-up-before' } as const;
type NoteKey = (typeof NOTE)[keyof typeof NOTE];
/** Longer than a token request takes, so that one in flight during a logout has finished. */
const RACE_SETTLE_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Keycloak indexes events by realm and time, and login events also by user and type; nothing else.
// A search by client, or admin events by resource path, reads every event its bounds let through:
// all the realm keeps, unbounded (on this machine with 3,000 clients, 7-10 ms of Keycloak's CPU per
// search against 3-5 bounded, and growing with the table). So searches are bounded wherever that
// loses nothing: by the user and type a grant names, the window the caller filters on anyway, the
// user's creation, or a client's once its admin events show it.
const minuteFloor = (ms: number) => Math.floor(ms / 60_000) * 60_000;
/**
 * Nothing Keycloak records about a user predates the user: both are stamped from its clock. The
 * second allows for a cluster's nodes, whose clocks NTP keeps within milliseconds of each other.
 */
const CLOCK_MARGIN_MS = 1000;
const createdFrom = (user: UserRep) => (user.createdTimestamp ? user.createdTimestamp - CLOCK_MARGIN_MS : undefined);
/** Events per search, login or admin: the newest. */
const SEARCH_MAX = 200;
/** Events that hand out tokens: who used the identity. */
const TOKEN_EVENTS = ['CLIENT_LOGIN', 'LOGIN', 'CODE_TO_TOKEN', 'REFRESH_TOKEN', 'TOKEN_EXCHANGE'];

const noteMissing = (key: NoteKey) =>
  `no retry note: the realm did not keep user attribute ${key} (declare it in the realm's user profile, administrators only; see the README), so a retry whose first result was lost could not rebuild this receipt`;
const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);
const fingerprint = (secret: string) => createHash('sha256').update(secret).digest('hex').slice(0, 12);
const sameSecret = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
/** A note Cordon left on the user, or undefined when there is none (or it is not a list). */
const noted = (user: UserRep | undefined, key: NoteKey): string[] | undefined => {
  const v = user?.attributes?.[key]?.[0];
  if (v === undefined) return undefined;
  try {
    const x = JSON.parse(v) as unknown;
    return Array.isArray(x) ? x.map(String) : undefined;
  } catch {
    return undefined;
  }
};
const list = (v: Receipt[string] | undefined): string[] => {
  try {
    const x = typeof v === 'string' ? JSON.parse(v) : [];
    return Array.isArray(x) ? x.map(String) : [];
  } catch {
    return [];
  }
};

export class KeycloakProvider implements IdentityProvider {
  readonly name = 'keycloak';
  readonly api: KeycloakAdmin;
  private readonly highRisk: string[];
  /** Writes of a user's attributes, one at a time per user (a write replaces them all). */
  private readonly writing = new Map<string, Promise<unknown>>();
  /** When a suppression of each identity began (performance.now()), for RECENT_MS: evidence beside it may reuse its reads. */
  private readonly suppressing = new Map<string, number>();
  /** Not-before values this worker is setting or has just set on clients (by realm and client uuid), for RECENT_MS. */
  private readonly clientNotBefore = new Map<string, Promise<number>>();

  constructor(o: KeycloakOptions) {
    this.api = new KeycloakAdmin(o);
    this.highRisk = o.highRiskRoles ?? [];
    this.highRisk.forEach(parseGrant);
  }

  private get conn() {
    return this.api.conn;
  }

  // ---- lookups ----

  /** The identity as Keycloak has it; `since`: reads may take answers to requests sent since then (see KeycloakAdmin.call). */
  private async find(identityId: string, since?: number): Promise<Found | undefined> {
    const ref = parseIdentity(identityId);
    if (!ref) return undefined;
    const r = ref.realm;
    if (ref.kind === 'user') {
      const users = await this.api.call<UserRep[]>('GET', path`${r}/users`, { query: { username: ref.name, exact: true, briefRepresentation: false }, allowMissing: true, sentSince: since });
      const user = users?.find((u) => u.username === ref.name);
      return user && { id: identityId, ref, user };
    }
    const clients = await this.api.call<ClientRep[]>('GET', path`${r}/clients`, { query: { clientId: ref.name, search: false }, allowMissing: true, sentSince: since });
    const client = clients?.find((c) => c.clientId === ref.name);
    if (!client) return undefined;
    const user = client.serviceAccountsEnabled ? await this.api.call<UserRep>('GET', path`${r}/clients/${client.id}/service-account-user`, { allowMissing: true, sentSince: since }) : undefined;
    return { id: identityId, ref, client, user };
  }

  private async need(identityId: string, since?: number): Promise<Found> {
    const f = await this.find(identityId, since);
    if (!f) throw new IdentityNotFoundError(this.name, identityId);
    return f;
  }

  /** The identity, or an error saying why Cordon will not act on it. */
  private async mutable(identityId: string): Promise<Found> {
    const f = await this.need(identityId);
    const own = f.ref.realm === this.conn.realm;
    let why: string | undefined;
    if (own && f.client?.clientId === this.conn.clientId) why = "it is Cordon's own admin client";
    else if (own && f.user?.username === `service-account-${this.conn.clientId}`.toLowerCase()) why = "it is the service account of Cordon's own admin client";
    else if (f.ref.realm === 'master' && f.user) {
      const roles = (await this.api.call<RoleRep[]>('GET', path`master/users/${f.user.id}/role-mappings/realm/composite`)) ?? [];
      if (roles.some((x) => x.name === 'admin')) why = 'it is an administrator of the master realm (contain it by hand)';
    }
    refuse(this.name, identityId, why);
    return f;
  }

  private async held(realm: string, user: UserRep | undefined, since?: number): Promise<Held[]> {
    if (!user) return [];
    const u = user.id;
    // The combined /role-mappings hides realm roles without view-realm, so realm roles come from their own endpoint.
    const [realmRoles, all, groups] = await Promise.all([
      this.api.call<RoleRep[]>('GET', path`${realm}/users/${u}/role-mappings/realm`, { sentSince: since }),
      this.api.call<{ clientMappings?: Record<string, { id: string; client: string; mappings: RoleRep[] }> }>('GET', path`${realm}/users/${u}/role-mappings`, { sentSince: since }),
      this.api.call<{ id: string; path: string }[]>('GET', path`${realm}/users/${u}/groups`, { query: { briefRepresentation: true, first: 0, max: 10_000 }, sentSince: since }),
    ]);
    const out: Held[] = [
      ...(realmRoles ?? []).map((role) => ({ grant: formatGrant({ type: 'realm-role', role: role.name }), type: 'realm-role' as const, role })),
      ...Object.values(all?.clientMappings ?? {}).flatMap((c) =>
        c.mappings.map((role) => ({ grant: formatGrant({ type: 'client-role', clientId: c.client, role: role.name }), type: 'client-role' as const, clientUuid: c.id, role })),
      ),
      ...(groups ?? []).map((g) => ({ grant: formatGrant({ type: 'group', path: g.path }), type: 'group' as const, groupId: g.id })),
    ];
    return out.sort((a, b) => (a.grant < b.grant ? -1 : a.grant > b.grant ? 1 : 0));
  }

  private async removeHeld(realm: string, user: UserRep, items: Held[]): Promise<void> {
    const u = user.id;
    const realmRoles = items.flatMap((h) => (h.type === 'realm-role' ? [h.role] : []));
    if (realmRoles.length) await this.api.call('DELETE', path`${realm}/users/${u}/role-mappings/realm`, { body: realmRoles });
    const byClient = new Map<string, RoleRep[]>();
    for (const h of items) if (h.type === 'client-role') byClient.set(h.clientUuid, [...(byClient.get(h.clientUuid) ?? []), h.role]);
    for (const [c, roles] of byClient) await this.api.call('DELETE', path`${realm}/users/${u}/role-mappings/clients/${c}`, { body: roles });
    for (const h of items) if (h.type === 'group') await this.api.call('DELETE', path`${realm}/users/${u}/groups/${h.groupId}`);
  }

  /** Finds what adding `grants` takes; refuses (before changing anything) if one no longer exists. */
  private async lookup(realm: string, user: UserRep, grants: string[]): Promise<Held[]> {
    const parsed = grants.map((g) => [g, parseGrant(g)] as const);
    // Realm roles by name need view-realm; these two lists name every realm role, without it: the
    // ones the user could be given, and the ones it holds already through a group or composite.
    const available = parsed.some(([, p]) => p.type === 'realm-role')
      ? (
          await Promise.all([
            this.api.call<RoleRep[]>('GET', path`${realm}/users/${user.id}/role-mappings/realm/available`),
            this.api.call<RoleRep[]>('GET', path`${realm}/users/${user.id}/role-mappings/realm/composite`),
          ])
        ).flatMap((x) => x ?? [])
      : [];
    const missing: string[] = [];
    const out: Held[] = [];
    for (const [grant, p] of parsed) {
      if (p.type === 'realm-role') {
        const role = available.find((r) => r.name === p.role);
        if (role) out.push({ grant, type: 'realm-role', role });
        else missing.push(grant);
      } else if (p.type === 'client-role') {
        const client = (await this.api.call<ClientRep[]>('GET', path`${realm}/clients`, { query: { clientId: p.clientId, search: false } }))?.find((c) => c.clientId === p.clientId);
        const role = client && (await this.api.call<RoleRep>('GET', path`${realm}/clients/${client.id}/roles/${p.role}`, { allowMissing: true }));
        if (client && role) out.push({ grant, type: 'client-role', clientUuid: client.id, role });
        else missing.push(grant);
      } else {
        const group = await this.api.call<{ id: string }>('GET', `${encodeURIComponent(realm)}/group-by-path/${p.path.slice(1).split('/').map(encodeURIComponent).join('/')}`, { allowMissing: true });
        if (group) out.push({ grant, type: 'group', groupId: group.id });
        else missing.push(grant);
      }
    }
    if (missing.length) throw new NotSupportedError(`keycloak: cannot restore ${missing.join(', ')}: no longer in realm "${realm}"`);
    return out;
  }

  private async addHeld(realm: string, user: UserRep, items: Held[]): Promise<void> {
    const u = user.id;
    const realmRoles = items.flatMap((h) => (h.type === 'realm-role' ? [h.role] : []));
    if (realmRoles.length) await this.api.call('POST', path`${realm}/users/${u}/role-mappings/realm`, { body: realmRoles });
    const byClient = new Map<string, RoleRep[]>();
    for (const h of items) if (h.type === 'client-role') byClient.set(h.clientUuid, [...(byClient.get(h.clientUuid) ?? []), h.role]);
    for (const [c, roles] of byClient) await this.api.call('POST', path`${realm}/users/${u}/role-mappings/clients/${c}`, { body: roles });
    for (const h of items) if (h.type === 'group') await this.api.call('PUT', path`${realm}/users/${u}/groups/${h.groupId}`);
  }

  private sessions(realm: string, user: UserRep | undefined, since?: number): Promise<SessionRep[]> {
    return user ? this.api.call<SessionRep[]>('GET', path`${realm}/users/${user.id}/sessions`, { sentSince: since }).then((s) => s ?? []) : Promise.resolve([]);
  }

  private consents(realm: string, user: UserRep, since?: number): Promise<ConsentRep[]> {
    return this.api.call<ConsentRep[]>('GET', path`${realm}/users/${user.id}/consents`, { sentSince: since }).then((c) => c ?? []);
  }

  /** Token grants recorded as events (client credentials and, for users, logins); newest first. */
  private events(realm: string, query: Record<string, string | number | undefined>, since?: number): Promise<EventRep[]> {
    return this.api.call<EventRep[]>('GET', path`${realm}/events`, { query: { max: SEARCH_MAX, ...query }, sentSince: since }).then((e) => e ?? []);
  }

  /**
   * Admin events on `resource` and below, newest first, from `from` on. Representations are left
   * out: they can hold what an admin set, secrets included.
   */
  private async adminEvents(realm: string, resource: string, from?: number): Promise<AdminEventRep[]> {
    return (await this.api.call<AdminEventRep[]>('GET', path`${realm}/admin-events`, { query: { resourcePath: `${resource}*`, dateFrom: from, max: SEARCH_MAX } })) ?? [];
  }

  /**
   * A client's admin events, and its login events by client id (its grants, and sign-ins through
   * it), newest first. A client has no creation time, but one made with service accounts on got
   * its service account at the same moment: both are searched from there, and both answers stand
   * once the admin events hold the client's own creation (nothing about or through the client
   * precedes it; an earlier client of the same name was another client). A full answer of admin
   * events stands too. Otherwise (service accounts turned on later, or that event expired) what
   * does not stand is searched again unbounded.
   */
  private async clientEvents(realm: string, client: ClientRep, from: number | undefined, since?: number): Promise<{ admin: AdminEventRep[]; login: EventRep[] }> {
    const resource = `clients/${client.id}`;
    const by = { client: client.clientId };
    // Unbounded, the login search is also the grant search of a client without a service account (liveGrants): beside that cut, its answer serves.
    const [admin, login] = await Promise.all([this.adminEvents(realm, resource, from), this.events(realm, from === undefined ? by : { ...by, dateFrom: from }, since)]);
    if (from === undefined || admin.some((e) => e.operationType === 'CREATE' && e.resourcePath === resource)) return { admin, login };
    const [allAdmin, allLogin] = await Promise.all([admin.length >= SEARCH_MAX ? admin : this.adminEvents(realm, resource), this.events(realm, by, since)]);
    return { admin: allAdmin, login: allLogin };
  }

  /**
   * Client-credentials grants after the client's not-before that may still be live (a grant names
   * the service account as its user). Read from the newest login events, the same request
   * auth-events evidence makes: every admin request costs Keycloak about the same CPU, so sharing
   * one beats a narrower second one. A busy identity, whose newest events all fall inside the
   * window, has the window searched by type as well (from its minute, one URL for cut and evidence).
   */
  private async liveGrants(f: Found, since?: number): Promise<EventRep[]> {
    if (!f.client) return [];
    const window = (this.api.serverSeconds() - TOKEN_WINDOW_S) * 1000;
    const from = Math.max((f.client.notBefore ?? 0) * 1000, window);
    const by = f.user ? { user: f.user.id } : { client: f.client.clientId };
    const newest = await this.events(f.ref.realm, by, since);
    // The newest SEARCH_MAX hold every event since `from` once one of them is older.
    const whole = newest.length < SEARCH_MAX || newest.some((e) => e.time < from);
    const found = whole ? newest : await this.events(f.ref.realm, { ...by, type: 'CLIENT_LOGIN', dateFrom: minuteFloor(window) }, since);
    return found.filter((e) => e.type === 'CLIENT_LOGIN' && e.time >= from && !e.error);
  }

  private asDependents(sessions: SessionRep[]): Dependent[] {
    return sessions.flatMap((s) => Object.values(s.clients ?? {}).map((c) => ({ name: c, address: s.ipAddress, lastSeen: iso(s.lastAccess) })));
  }

  // ---- Cordon's notes on a user ----

  /**
   * Sets (or, with `value` undefined, removes) one of Cordon's notes on the user; true when the
   * user holds exactly that afterwards. Keycloak replaces all of a user's attributes (and its
   * name and email) on an update that names attributes: so the user is read afresh, everything
   * else written back as it was, one write per user at a time, and the result read back (a
   * concurrent update elsewhere gets one more try).
   */
  private async note(realm: string, user: UserRep, key: NoteKey, value: string[] | undefined): Promise<boolean> {
    const want = value && JSON.stringify(value);
    const run = async () => {
      for (let attempt = 0; ; attempt++) {
        const u = await this.api.call<UserRep>('GET', path`${realm}/users/${user.id}`);
        if (!u) throw new IdentityNotFoundError(this.name, `${realm}/user:${user.username}`);
        const attributes = { ...(u.attributes ?? {}) };
        if (attributes[key]?.[0] === want) return true;
        if (attempt === 2) return false; // the realm drops it (its user profile does not allow it)
        if (want === undefined) delete attributes[key];
        else attributes[key] = [want];
        await this.api.call('PUT', path`${realm}/users/${user.id}`, { body: { firstName: u.firstName, lastName: u.lastName, email: u.email, attributes } });
      }
    };
    const prev = this.writing.get(user.id) ?? Promise.resolve();
    const mine = prev.then(run, run);
    const tail = mine.catch(() => undefined);
    this.writing.set(user.id, tail);
    try {
      return await mine;
    } finally {
      if (this.writing.get(user.id) === tail) this.writing.delete(user.id);
    }
  }

  // ---- session ending, shared by suppression, restrict, rotate and disable ----

  /**
   * Ends what the identity's credentials opened: a user's sessions (logout also sets its
   * not-before); for a client, its not-before (refused by introspection from then on) and its
   * service account's sessions. Returns what ended.
   */
  private async endSessions(f: Found, force = false, offline: SessionRep[] = []): Promise<{ ended: Dependent[]; notBefore: boolean }> {
    const r = f.ref.realm;
    const c = f.client;
    const reads = Promise.all([this.sessions(r, f.user), this.liveGrants(f)]);
    // A client's not-before that must move whatever the reads say (forced, or older than any token
    // it could have issued) moves at once, beside them: the cut never waits on the event search,
    // the heaviest read Keycloak serves. Otherwise the grants found decide. (Sent after the reads,
    // so that the other revocation's reads, sent at the same moment, still join them.)
    const early = c && (force || (c.notBefore ?? 0) < this.api.serverSeconds() - TOKEN_WINDOW_S) ? this.setClientNotBefore(r, c.id) : undefined;
    const [[sessions, grants], set] = await Promise.all([reads, early]);
    if ((sessions.length || offline.length) && f.user) await this.logout(r, f.user, sessions, offline);
    const ended = this.asDependents(sessions);
    if (!c) return { ended, notBefore: false };
    if (set === undefined && !grants.length) return { ended, notBefore: false };
    c.notBefore = set ?? (await this.setClientNotBefore(r, c.id));
    const byAddress = new Map<string, Dependent>();
    for (const e of grants) if (!byAddress.has(e.ipAddress ?? '')) byAddress.set(e.ipAddress ?? '', { name: c.clientId, address: e.ipAddress, lastSeen: iso(e.time) });
    return { ended: [...ended, ...byAddress.values()], notBefore: true };
  }

  /**
   * Sets a client's not-before to the next second: Keycloak keeps a token whose iat equals the
   * not-before, and one minted this very second must die too. A client's revoke-sessions and
   * revoke-tokens both cut its tokens, a few ms apart: when this worker is setting, or has set, the
   * very value the second would write, that write is the same one, so it is shared, not repeated.
   */
  private setClientNotBefore(realm: string, clientUuid: string): Promise<number> {
    const key = `${realm}/${clientUuid}`;
    const before = this.clientNotBefore.get(key);
    // Chained before anything is awaited, so a second caller always sees the first one's write.
    const write = (async () => {
      const earlier = await before?.catch(() => undefined);
      const notBefore = this.api.serverSeconds() + 1;
      if (earlier !== undefined && earlier >= notBefore) return earlier;
      await this.api.call('PUT', path`${realm}/clients/${clientUuid}`, { body: { notBefore } });
      return notBefore;
    })();
    this.clientNotBefore.set(key, write);
    forgetLater(this.clientNotBefore, key, write);
    return write;
  }

  /**
   * Logs a user out so that they stay out. Keycloak 26.7 can lose a logout to a refresh in flight:
   * the session lives on in its cache, invisible to the admin API, and its refresh tokens keep
   * working (seen here with a client refreshing in a loop). So the known sessions are deleted
   * again once requests in flight have finished, and a second logout in a later second sets a
   * not-before newer than any token the race could have minted.
   */
  private async logout(realm: string, user: UserRep, sessions: SessionRep[], offline: SessionRep[] = []): Promise<void> {
    const logout = path`${realm}/users/${user.id}/logout`;
    const again = () =>
      Promise.all([
        ...sessions.map((s) => this.api.call('DELETE', path`${realm}/sessions/${s.id}`, { allowMissing: true })),
        ...offline.map((s) => this.api.call('DELETE', path`${realm}/sessions/${s.id}`, { query: { isOffline: true }, allowMissing: true })),
      ]);
    await this.api.call('POST', logout);
    const t0 = Date.now();
    await sleep(RACE_SETTLE_MS);
    await again();
    await sleep(Math.max(0, 1000 + RACE_SETTLE_MS - (Date.now() - t0)));
    await this.api.call('POST', logout);
    await sleep(RACE_SETTLE_MS);
    await again();
  }

  private describeEnded(x: { ended: Dependent[]; notBefore: boolean }, f: Found): (string | false)[] {
    const sessions = x.ended.filter((d) => d.name !== f.client?.clientId);
    return [sessions.length > 0 && `ended ${sessions.length} session client(s) (logout, not-before set)`, x.notBefore && `client not-before set: its issued tokens fail introspection`];
  }

  /** Marks the start of a suppression of the identity (the first of its actions at once), for RECENT_MS. */
  private beganSuppressing(identityId: string): void {
    const began = this.suppressing.get(identityId);
    if (began !== undefined && performance.now() - began < RECENT_MS) return;
    const now = performance.now();
    this.suppressing.set(identityId, now);
    forgetLater(this.suppressing, identityId, now);
  }

  // ---- the interface ----

  async inspect(identityId: string): Promise<IdentitySnapshot> {
    const f = await this.find(identityId);
    if (!f) return { exists: false, enabled: false, grants: [], sessions: 0 };
    const [held, sessions, grants] = await Promise.all([this.held(f.ref.realm, f.user), this.sessions(f.ref.realm, f.user), this.liveGrants(f)]);
    const enabled = f.client ? f.client.enabled : f.user!.enabled;
    return { exists: true, enabled, grants: held.map((h) => h.grant), sessions: sessions.length + grants.length };
  }

  async suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult & { ended?: Dependent[] }> {
    this.beganSuppressing(identityId);
    const f = await this.mutable(identityId);
    const r = f.ref.realm;
    switch (action) {
      case 'revoke-sessions':
      case 'revoke-tokens': {
        if (scope?.sessionId && f.user && !f.client) {
          // One named session: it goes, with the tokens it issued; the rest stay. Deleted again once
          // a refresh in flight has finished (see logout()); without a not-before, the user's other sessions live on.
          const s = (await this.sessions(r, f.user)).find((x) => x.id === scope.sessionId);
          if (s) {
            await this.api.call('DELETE', path`${r}/sessions/${s.id}`, { allowMissing: true });
            await sleep(RACE_SETTLE_MS);
            await this.api.call('DELETE', path`${r}/sessions/${s.id}`, { allowMissing: true });
          }
          return { ...outcome(action, [s && `ended session ${s.id}`]), ended: s ? this.asDependents([s]) : [] };
        }
        // A client's service account has no consents or offline sessions of a consent (it never
        // signs in interactively): for a client both revocations are the same cut, so they meet on
        // the same reads in flight and share one write of its not-before.
        if (action === 'revoke-sessions' || !f.user || f.client) {
          const x = await this.endSessions(f);
          return { ...outcome(action, this.describeEnded(x, f)), ended: x.ended };
        }
        // Offline sessions outlive a logout; revoking a client's consent removes them with it. The
        // logout that follows puts a not-before past every offline token the attacker holds.
        const [consents, offline] = await Promise.all([this.consents(r, f.user), this.offlineSessions(r, f.user)]);
        for (const c of consents) await this.api.call('DELETE', path`${r}/users/${f.user.id}/consents/${c.clientId}`, { allowMissing: true });
        const x = await this.endSessions(f, false, offline);
        const changes = [...this.describeEnded(x, f), consents.length > 0 && `revoked offline tokens and consents for ${consents.map((c) => c.clientId).join(', ')}`];
        x.ended.push(...offline.flatMap((o) => Object.values(o.clients ?? {}).map((c) => ({ name: c, address: o.ipAddress, lastSeen: iso(o.lastAccess) }))));
        return { ...outcome(action, changes), ended: x.ended };
      }
      case 'force-step-up': {
        if (!f.user || f.client) return notApplicable(this.name, action, 'a client signs in with its secret, never interactively');
        const current = f.user.requiredActions ?? [];
        // A note from an earlier attempt holds while what it says step-up added is still required:
        // a retry then hands back the same receipt. (Once the owner has done them, it is stale.)
        const note = noted(f.user, NOTE.stepUp);
        const before = note && STEP_UP_ACTIONS.every((a) => note.includes(a) || current.includes(a)) ? note : current;
        const added = STEP_UP_ACTIONS.filter((a) => !before.includes(a));
        const missing = added.filter((a) => !current.includes(a));
        // The note first: a crash before the required actions leaves it stale, which a retry sees.
        const kept = !added.length || (note !== undefined && sameList(note, before)) || (await this.note(r, f.user, NOTE.stepUp, before));
        if (missing.length) await this.api.call('PUT', path`${r}/users/${f.user.id}`, { body: { requiredActions: [...current, ...missing] } });
        const result = outcome(action, [missing.length > 0 && `required at next sign-in: ${missing.join(', ')} (live sessions continue)`]);
        if (!kept) result.detail += `; ${noteMissing(NOTE.stepUp)}`;
        return { ...result, receipt: { requiredActionsBefore: JSON.stringify(before), added: JSON.stringify(added) } };
      }
      case 'block-high-risk-apis': {
        if (!this.highRisk.length) return notApplicable(this.name, action, 'no high-risk roles configured (CORDON_KEYCLOAK_HIGH_RISK_ROLES)');
        // What stays effective (through a group or a composite) is read beside the mappings, and again only after a removal.
        const effectiveNow = async () => (f.user ? ((await this.api.call<RoleRep[]>('GET', path`${r}/users/${f.user.id}/role-mappings/realm/composite`)) ?? []).map((x) => `realm-role:${x.name}`) : []);
        const [held, effectiveBefore] = await Promise.all([this.held(r, f.user), effectiveNow()]);
        const found = held.filter((h) => this.highRisk.includes(h.grant));
        // What an earlier attempt removed (its note) and what is removed now: a retry's receipt is the first one's.
        const note = noted(f.user, NOTE.blocked) ?? [];
        const removed = [...new Set([...note, ...found.map((h) => h.grant)])].sort();
        // The note first: a crash before the removal leaves both, and the retry removes the same.
        const kept = !f.user || !removed.length || sameList(note, removed) || (await this.note(r, f.user, NOTE.blocked, removed));
        if (found.length && f.user) await this.removeHeld(r, f.user, found);
        // Still effective through a group or a composite: said, not silently ignored.
        const effective = found.length ? await effectiveNow() : effectiveBefore;
        const still = this.highRisk.filter((g) => effective.includes(g));
        const result = outcome(action, [found.length > 0 && `removed ${found.map((h) => h.grant).join(', ')} (tokens refreshed from now on lack them; issued ones keep them until they expire)`]);
        if (still.length) result.detail += `; still effective through a group or composite role: ${still.join(', ')}`;
        if (!kept) result.detail += `; ${noteMissing(NOTE.blocked)}`;
        return { ...result, receipt: { removed: JSON.stringify(removed) } };
      }
    }
  }

  async liftSuppression(identityId: string, action: SuppressionAction, receipt?: Receipt): Promise<ActionResult> {
    if (action === 'revoke-sessions' || action === 'revoke-tokens') return notApplicable(this.name, action, 'ended sessions and revoked tokens stay revoked; the owner signs in again');
    const f = await this.mutable(identityId);
    const r = f.ref.realm;
    if (action === 'force-step-up' && (!f.user || f.client)) return notApplicable(this.name, action, 'nothing was required of a client');
    // The receipt says what to undo; without one, Cordon's own note on the user does (as a retry reads it).
    const key = action === 'force-step-up' ? NOTE.stepUp : NOTE.blocked;
    const note = noted(f.user, key);
    const field = action === 'force-step-up' ? 'added' : 'removed';
    if (receipt?.[field] === undefined && note === undefined) return { changed: false, detail: `lift:${action}: no receipt, so nothing is known to undo` };
    if (!f.user) return outcome(`lift:${action}`, []);
    // The note goes last: a crash before it leaves it for the retry, which then finds the rest done.
    const unnote = async () => note !== undefined && (await this.note(r, f.user!, key, undefined)) && `Cordon's note ${key} removed`;
    if (action === 'force-step-up') {
      const added = receipt?.added !== undefined ? list(receipt.added) : STEP_UP_ACTIONS.filter((a) => !note!.includes(a));
      // A temporary password Cordon issued since still needs UPDATE_PASSWORD: that one stays.
      const creds = (await this.api.call<CredentialRep[]>('GET', path`${r}/users/${f.user.id}/credentials`)) ?? [];
      const cordonPassword = creds.some((c) => c.type === 'password' && c.userLabel?.startsWith(CORDON_LABEL));
      const drop = added.filter((a) => (f.user!.requiredActions ?? []).includes(a) && !(a === 'UPDATE_PASSWORD' && cordonPassword));
      if (drop.length) await this.api.call('PUT', path`${r}/users/${f.user.id}`, { body: { requiredActions: (f.user.requiredActions ?? []).filter((a) => !drop.includes(a)) } });
      return outcome(`lift:${action}`, [drop.length > 0 && `no longer required: ${drop.join(', ')}`, await unnote()]);
    }
    const removed = receipt?.removed !== undefined ? list(receipt.removed) : note!;
    const current = (await this.held(r, f.user)).map((h) => h.grant);
    const add = removed.filter((g) => !current.includes(g));
    if (add.length) await this.addHeld(r, f.user, await this.lookup(r, f.user, add));
    return outcome(`lift:${action}`, [add.length > 0 && `high-risk roles back: ${add.join(', ')}`, await unnote()]);
  }

  /** Evidence's reads go in the background lane: under a burst, every cut is served first. */
  evidence(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact> {
    return this.api.lane.background(() => this.capture(identityId, kind));
  }

  private async capture(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact> {
    // Beside a suppression of this identity, evidence may take the answers its reads have just received.
    const since = this.suppressing.get(identityId);
    const f = await this.need(identityId, since);
    const r = f.ref.realm;
    const u = f.user;
    const c = f.client;
    // A client's service account never signs in interactively: it has no consents, so no offline sessions of one either.
    const person = c ? undefined : u;
    const event = (e: EventRep) => ({ time: iso(e.time), type: e.type, clientId: e.clientId, userId: e.userId, sessionId: e.sessionId, ipAddress: e.ipAddress, error: e.error, details: e.details && stripSecrets(e.details) });
    const body: Record<EvidenceKind, () => Promise<unknown>> = {
      'auth-events': async () => {
        // A client's searches start at its service account's creation when its admin events prove
        // it no older. The search by user is the one a client's suppression made (liveGrants):
        // beside it, its answer serves.
        const from = u && createdFrom(u);
        const [byUser, client, userAdmin] = await Promise.all([
          u ? this.events(r, { user: u.id }, since) : [],
          c ? this.clientEvents(r, c, from, since) : { admin: [], login: [] },
          u ? this.adminEvents(r, `users/${u.id}`, from) : [],
        ]);
        const seen = new Set<string>();
        const login = [...byUser, ...client.login].filter((e) => !seen.has(`${e.time}${e.type}${e.sessionId}`) && seen.add(`${e.time}${e.type}${e.sessionId}`)).sort((a, b) => b.time - a.time);
        return {
          source: 'Keycloak login and admin events (kept while the realm stores events)',
          login: login.map(event),
          admin: [...client.admin, ...userAdmin]
            .sort((a, b) => b.time - a.time)
            .map((a) => ({ time: iso(a.time), operation: a.operationType, resourceType: a.resourceType, resourcePath: a.resourcePath, by: a.authDetails, error: a.error })),
        };
      },
      sessions: async () => {
        const online = await this.sessions(r, u, since);
        const offline = person ? await this.offlineSessions(r, person, since) : [];
        const clientSessions = c ? ((await this.api.call<SessionRep[]>('GET', path`${r}/clients/${c.id}/user-sessions`, { query: { max: 1000 }, sentSince: since })) ?? []) : [];
        const grants = c ? (await this.liveGrants(f, since)).map(event) : [];
        const shape = (s: SessionRep & { username?: string }) => ({ id: s.id, username: s.username, ipAddress: s.ipAddress, started: iso(s.start), lastAccess: iso(s.lastAccess), clients: Object.values(s.clients ?? {}) });
        return { online: online.map(shape), offline: offline.map(shape), ...(c ? { signedInThroughClient: clientSessions.map(shape), liveClientCredentialGrants: grants } : {}) };
      },
      'token-metadata': async () => ({
        notBefore: { user: u?.notBefore ?? null, client: c?.notBefore ?? null },
        // Types, dates and labels only: never secret or credential data.
        credentials: u ? ((await this.api.call<CredentialRep[]>('GET', path`${r}/users/${u.id}/credentials`)) ?? []).map((x) => ({ id: x.id, type: x.type, userLabel: x.userLabel, created: iso(x.createdDate) })) : [],
        consents: person ? (await this.consents(r, person, since)).map((x) => ({ clientId: x.clientId, scopes: x.grantedClientScopes, created: iso(x.createdDate), lastUpdated: iso(x.lastUpdatedDate), grants: x.additionalGrants?.map((g) => g.key) })) : [],
        ...(c
          ? {
              client: {
                authenticator: c.clientAuthenticatorType,
                secretCreated: c.attributes?.['client.secret.creation.time'] ? iso(Number(c.attributes['client.secret.creation.time']) * 1000) : null,
                rotatedSecretPresent: Boolean(await this.api.call('GET', path`${r}/clients/${c.id}/client-secret/rotated`, { allowMissing: true })),
                accessTokenLifespan: c.attributes?.['access.token.lifespan'] ?? 'realm default',
              },
            }
          : {}),
      }),
      grants: async () => {
        const held = await this.held(r, u, since);
        const effective = u ? ((await this.api.call<RoleRep[]>('GET', path`${r}/users/${u.id}/role-mappings/realm/composite`, { sentSince: since })) ?? []).map((x) => x.name).sort() : [];
        return { direct: held.map((h) => h.grant), effectiveRealmRoles: effective, serviceAccount: c ? (u?.username ?? null) : undefined };
      },
      // The client as the lookup found it: Keycloak's list answers with the same full representation as a read by id.
      'config-snapshot': async () => ({ user: u ? stripSecrets(u) : null, client: c ? stripSecrets(c) : undefined }),
    };
    return { contentType: 'application/json', body: JSON.stringify({ identityId, capturedAt: new Date().toISOString(), [kind]: await body[kind]() }) };
  }

  private async offlineSessions(realm: string, user: UserRep, since?: number): Promise<(SessionRep & { username?: string })[]> {
    const out: SessionRep[] = [];
    for (const consent of await this.consents(realm, user, since)) {
      const client = (await this.api.call<ClientRep[]>('GET', path`${realm}/clients`, { query: { clientId: consent.clientId, search: false }, sentSince: since }))?.find((x) => x.clientId === consent.clientId);
      if (client) out.push(...((await this.api.call<SessionRep[]>('GET', path`${realm}/users/${user.id}/offline-sessions/${client.id}`, { allowMissing: true, sentSince: since })) ?? []));
    }
    return out;
  }

  async restrict(identityId: string, keep: string[]): Promise<ActionResult> {
    const f = await this.mutable(identityId);
    const held = await this.held(f.ref.realm, f.user);
    const removed = held.filter((h) => !keep.includes(h.grant));
    if (removed.length && f.user) await this.removeHeld(f.ref.realm, f.user, removed);
    // Issued tokens carry the old roles until they expire: end what carries them.
    const x = removed.length ? await this.endSessions(f, true) : await this.endSessions(f);
    return outcome('restrict', [removed.length > 0 && `removed ${removed.map((h) => h.grant).join(', ')}`, ...this.describeEnded(x, f)]);
  }

  async restore(identityId: string, grants: string[]): Promise<ActionResult> {
    grants.forEach(parseGrant); // refuse a bad receipt before changing anything
    const f = await this.mutable(identityId);
    if (!f.user) {
      if (grants.length) throw new NotSupportedError(`keycloak: ${identityId} has no service account to hold ${grants.join(', ')}`);
      return outcome('restore', []);
    }
    const current = await this.held(f.ref.realm, f.user);
    const extra = current.filter((h) => !grants.includes(h.grant));
    const add = grants.filter((g) => !current.some((h) => h.grant === g));
    const adding = await this.lookup(f.ref.realm, f.user, add);
    await this.removeHeld(f.ref.realm, f.user, extra);
    await this.addHeld(f.ref.realm, f.user, adding);
    return outcome('restore', [add.length > 0 && `added ${add.join(', ')}`, extra.length > 0 && `removed ${extra.map((h) => h.grant).join(', ')}`]);
  }

  async setSecret(identityId: string, secret: string): Promise<ActionResult> {
    const f = await this.mutable(identityId);
    const r = f.ref.realm;
    if (f.client) {
      const c = f.client;
      if (c.publicClient || c.bearerOnly || (c.clientAuthenticatorType ?? 'client-secret') !== 'client-secret') {
        throw new NotSupportedError(`keycloak: client "${c.clientId}" does not authenticate with a client secret (${c.publicClient ? 'public client' : c.clientAuthenticatorType}); rotate its key by hand`);
      }
      const current = await this.api.call<{ value?: string }>('GET', path`${r}/clients/${c.id}/client-secret`);
      const inPlace = current?.value !== undefined && sameSecret(current.value, secret);
      // Not-before first: a crash between the two leaves tokens dead and the old secret for the retry to replace.
      const x = inPlace ? await this.endSessions(f) : await this.endSessions(f, true);
      if (!inPlace) await this.api.call('PUT', path`${r}/clients/${c.id}`, { body: { secret } });
      // A secret-rotation policy keeps the previous secret valid for a while: not this one.
      const rotated = await this.api.call('GET', path`${r}/clients/${c.id}/client-secret/rotated`, { allowMissing: true });
      if (rotated) await this.api.call('DELETE', path`${r}/clients/${c.id}/client-secret/rotated`);
      return outcome('rotate', [!inPlace && 'client secret replaced', Boolean(rotated) && 'the rotated (previous) secret invalidated', ...this.describeEnded(x, f)]);
    }
    const u = f.user!;
    const password = async () => ((await this.api.call<CredentialRep[]>('GET', path`${r}/users/${u.id}/credentials`)) ?? []).find((x) => x.type === 'password');
    // Keycloak never shows a password back. Cordon labels the credential it set with the secret's
    // fingerprint (the one workflow history holds) and its date: a retry finds it in place; an owner's
    // own change later replaces the date.
    const label = (cr: CredentialRep) => `${CORDON_LABEL}${fingerprint(secret)}@${cr.createdDate}`;
    let pw = await password();
    const inPlace = pw !== undefined && pw.userLabel === label(pw);
    if (!inPlace) {
      // Temporary: the owner must choose their own at the next sign-in.
      await this.api.call('PUT', path`${r}/users/${u.id}/reset-password`, { body: { type: 'password', value: secret, temporary: true } });
      pw = await password();
      if (pw) await this.api.call('PUT', path`${r}/users/${u.id}/credentials/${pw.id}/userLabel`, { text: label(pw) });
    }
    const x = await this.endSessions(f);
    return outcome('rotate', [!inPlace && 'password replaced by a temporary one (the owner sets their own at the next sign-in)', ...this.describeEnded(x, f)]);
  }

  async setEnabled(identityId: string, enabled: boolean): Promise<ActionResult> {
    const f = await this.mutable(identityId);
    const r = f.ref.realm;
    const was = f.client ? f.client.enabled : f.user!.enabled;
    if (was !== enabled) {
      if (f.client) await this.api.call('PUT', path`${r}/clients/${f.client.id}`, { body: { enabled } });
      else await this.api.call('PUT', path`${r}/users/${f.user!.id}`, { body: { enabled } });
    }
    // Disabling refuses new sign-ins; what is already signed in ends here.
    const x = enabled ? { ended: [], notBefore: false } : await this.endSessions(f, was !== enabled);
    return outcome(enabled ? 'enable' : 'disable', [was !== enabled && `${f.client ? 'client' : 'user'} ${enabled ? 'enabled' : 'disabled'}`, ...this.describeEnded(x, f)]);
  }

  async dependents(identityId: string, exclude?: Dependent[]): Promise<Dependent[]> {
    const f = await this.need(identityId);
    const r = f.ref.realm;
    const deps: Dependent[] = this.asDependents(await this.sessions(r, f.user));
    if (f.client) {
      // Who used the client recently: its token grants and the people who signed in through it.
      const since = (this.api.serverSeconds() - 24 * 3600) * 1000;
      const recent = [...(await this.events(r, { client: f.client.clientId, dateFrom: since })), ...(f.user ? await this.events(r, { user: f.user.id, dateFrom: since }) : [])].filter(
        (e) => e.time >= since && !e.error && TOKEN_EVENTS.includes(e.type),
      );
      for (const e of recent) deps.push({ name: e.clientId ?? f.client.clientId, address: e.ipAddress, lastSeen: iso(e.time) });
      const through = (await this.api.call<(SessionRep & { username: string })[]>('GET', path`${r}/clients/${f.client.id}/user-sessions`, { query: { max: 1000 } })) ?? [];
      deps.push(...through.map((s) => ({ name: `user:${s.username}`, address: s.ipAddress, lastSeen: iso(s.lastAccess) })));
    }
    // One entry per client and address, with the latest time it was seen.
    const merged = new Map<string, Dependent>();
    for (const d of deps) {
      const key = `${d.name}@${d.address}`;
      const prev = merged.get(key);
      if (!prev || (d.lastSeen ?? '') > (prev.lastSeen ?? '')) merged.set(key, d);
    }
    // The one rule every provider keeps: a client whose session suppression ended is the attacker's, also when it comes back.
    return dependentsExcept([...merged.values()], exclude);
  }

  warm(): Promise<void> {
    return this.api.warm();
  }

  async close(): Promise<void> {}
}
