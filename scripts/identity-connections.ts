// Connections authenticated *as* an identity, the way its owner (or an attacker holding its
// password) connects: for the tests and the benchmark. `closed` resolves with performance.now()
// when the server ends the connection, which is how both see a suppression land.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
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

// ---- OpenID Connect (Keycloak): an identity's "connection" is the tokens it holds ----------------

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  expires_in: number;
  scope?: string;
}

/** A refused token request: `error` as the OAuth spec names it, and the server's description. */
export class OidcError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status: number,
  ) {
    super(`${error}: ${description}`);
  }
}

/** A form POST from the local address `from` (a loopback alias such as 127.0.0.2: a client on another host, as the server sees it). */
function postFrom(url: string, form: Record<string, string>, from: string): Promise<{ status: number; text: string }> {
  const body = new URLSearchParams(form).toString();
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? https : http).request(
      u,
      { method: 'POST', localAddress: from, timeout: 10_000, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One request to the issuer's token endpoint (password, refresh_token, client_credentials,
 * authorization_code); from the local address `from` when given.
 */
export async function tokenRequest(issuer: string, form: Record<string, string>, from?: string): Promise<TokenSet> {
  const url = `${issuer}/protocol/openid-connect/token`;
  const res = from ? await postFrom(url, form, from) : await fetch(url, { method: 'POST', body: new URLSearchParams(form), signal: AbortSignal.timeout(10_000) }).then(async (r) => ({ status: r.status, text: await r.text() }));
  let body: Partial<TokenSet> & { error?: string; error_description?: string } = {};
  try {
    body = JSON.parse(res.text) as typeof body;
  } catch {
    /* not JSON: the status says what happened */
  }
  if (res.status < 200 || res.status >= 300 || !body.access_token) throw new OidcError(body.error ?? `http_${res.status}`, body.error_description ?? '', res.status);
  return body as TokenSet;
}

export const passwordGrant = (issuer: string, clientId: string, username: string, password: string, scope = 'openid') =>
  tokenRequest(issuer, { grant_type: 'password', client_id: clientId, username, password, scope });
export const clientCredentialsGrant = (issuer: string, clientId: string, secret: string, from?: string) =>
  tokenRequest(issuer, { grant_type: 'client_credentials', client_id: clientId, client_secret: secret }, from);
export const refreshGrant = (issuer: string, clientId: string, refreshToken: string) =>
  tokenRequest(issuer, { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken });

/** RFC 7662 introspection, as a resource server (a confidential client in the token's audience) does it. */
export async function introspect(issuer: string, resourceServer: { clientId: string; secret: string }, token: string): Promise<{ active: boolean } & Record<string, unknown>> {
  const res = await fetch(`${issuer}/protocol/openid-connect/token/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${encodeURIComponent(resourceServer.clientId)}:${encodeURIComponent(resourceServer.secret)}`).toString('base64')}` },
    body: new URLSearchParams({ token }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`introspection answered ${res.status}`);
  return (await res.json()) as { active: boolean };
}

/** The claims of a JWT, unverified (the tests read what Keycloak put in its own tokens). */
export function claims(jwt: string): Record<string, unknown> & { realm_access?: { roles: string[] }; resource_access?: Record<string, { roles: string[] }> } {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
}

/**
 * Signs in the way the owner does, through the browser login (authorization code flow): the form,
 * then the forms of required actions Keycloak asks for. A temporary password asks for a new one,
 * which is `newPassword` (the same is allowed). Anything else it asks for is an error naming it.
 */
export async function browserSignIn(issuer: string, clientId: string, redirectUri: string, username: string, password: string, newPassword = password): Promise<TokenSet> {
  const jar = new Map<string, string>();
  /** One request with the session's cookies; redirects inside Keycloak are followed, the one to the client is not. */
  const go = async (url: string, form?: Record<string, string>): Promise<{ status: number; html: string; location: string }> => {
    for (let hops = 0; hops < 5; hops++) {
      const res = await fetch(url, {
        method: form ? 'POST' : 'GET',
        redirect: 'manual',
        headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
        body: form && new URLSearchParams(form),
        signal: AbortSignal.timeout(10_000),
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const eq = pair!.indexOf('=');
        jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
      }
      const location = new URL(res.headers.get('location') ?? '', url).toString();
      if (res.status < 300 || res.status >= 400 || location.startsWith(redirectUri)) return { status: res.status, html: await res.text(), location };
      [url, form] = [location, undefined];
    }
    throw new Error('too many redirects');
  };
  const action = (html: string, formId: string) => {
    const m = new RegExp(`<form[^>]*id="${formId}"[^>]*action="([^"]+)"`).exec(html) ?? new RegExp(`<form[^>]*action="([^"]+)"[^>]*id="${formId}"`).exec(html);
    return m?.[1]?.replace(/&amp;/g, '&');
  };
  const state = randomUUID();
  let page = await go(`${issuer}/protocol/openid-connect/auth?${new URLSearchParams({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', state })}`);
  const login = action(page.html, 'kc-form-login');
  if (!login) throw new Error(`no login form (HTTP ${page.status})`);
  page = await go(login, { username, password, credentialId: '' });
  for (let step = 0; step < 3 && page.status === 200; step++) {
    const update = action(page.html, 'kc-passwd-update-form');
    if (!update) {
      const error = /kc-feedback-text">\s*([^<]+)/.exec(page.html)?.[1] ?? /<title>([^<]*)/.exec(page.html)?.[1];
      throw new OidcError('login_refused', (error ?? 'the login page asked for something else').trim(), 200);
    }
    page = await go(update, { 'password-new': newPassword, 'password-confirm': newPassword });
  }
  const code = page.location.startsWith(redirectUri) ? new URL(page.location).searchParams.get('code') : null;
  if (!code) throw new OidcError('login_refused', `no code in the redirect (HTTP ${page.status})`, page.status);
  return tokenRequest(issuer, { grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: redirectUri });
}
