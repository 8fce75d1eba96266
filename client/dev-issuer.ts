// A local OpenID issuer FOR DEVELOPMENT ONLY: the embedded stack has no identity provider, yet
// every operator command needs a verified token. It signs with a key kept in the data folder and
// serves discovery and JWKS on loopback; `cordon login --as NAME --role lead` mints from it.
// With a real issuer configured (CORDON_OIDC_ISSUER), it is off and `cordon login` refuses.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { CordonRole } from '../workflows/schemas';

const ALG = 'RS256';

export interface DevIssuerInfo {
  issuer: string;
  audience: string;
}

export class DevIssuer {
  private constructor(
    readonly dir: string,
    private readonly privateJwk: JWK,
  ) {}

  /** Opens (or creates) the development signing key in `<dataDir>/dev-issuer`. */
  static async open(dataDir: string): Promise<DevIssuer> {
    const dir = join(dataDir, 'dev-issuer');
    const file = join(dir, 'signing.private.jwk.json');
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { privateKey } = await generateKeyPair(ALG, { modulusLength: 2048, extractable: true });
      writeFileSync(file, JSON.stringify({ ...(await exportJWK(privateKey)), alg: ALG, use: 'sig', kid: `dev-${Date.now().toString(36)}` }), { mode: 0o600, flag: 'wx' });
    }
    return new DevIssuer(dir, JSON.parse(readFileSync(file, 'utf8')) as JWK);
  }

  get publicJwk(): JWK {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = this.privateJwk;
    return pub;
  }

  /** Where a running dev issuer said it serves (written by serve(), removed when it stops). */
  running(): DevIssuerInfo | undefined {
    const f = join(this.dir, 'running.json');
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as DevIssuerInfo) : undefined;
  }

  /** Serves discovery and JWKS on 127.0.0.1 only. */
  async serve(port: number, audience: string): Promise<{ issuer: string; close(): Promise<void> }> {
    const app: FastifyInstance = Fastify({ logger: false });
    let issuer = '';
    app.get('/.well-known/openid-configuration', async () => ({ issuer, jwks_uri: `${issuer}/jwks.json`, id_token_signing_alg_values_supported: [ALG], 'x-cordon': 'development issuer: not for production' }));
    app.get('/jwks.json', async () => ({ keys: [this.publicJwk] }));
    await app.listen({ host: '127.0.0.1', port });
    const addr = app.server.address();
    issuer = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}`;
    writeFileSync(join(this.dir, 'running.json'), JSON.stringify({ issuer, audience } satisfies DevIssuerInfo));
    return {
      issuer,
      close: async () => {
        rmSync(join(this.dir, 'running.json'), { force: true });
        await app.close();
      },
    };
  }

  /** A short-lived access token shaped like Keycloak's (roles in realm_access.roles). */
  async mint(o: { issuer: string; audience: string; username: string; roles: string[]; ttlSeconds?: number; now?: number }): Promise<string> {
    const key = await importJWK(this.privateJwk, ALG);
    const iat = Math.floor((o.now ?? Date.now()) / 1000);
    return new SignJWT({ preferred_username: o.username, realm_access: { roles: o.roles }, typ: 'Bearer' })
      .setProtectedHeader({ alg: ALG, kid: this.privateJwk.kid, typ: 'JWT' })
      .setIssuer(o.issuer)
      .setAudience(o.audience)
      .setSubject(`dev:${o.username}`)
      .setJti(randomUUID())
      .setIssuedAt(iat)
      .setExpirationTime(iat + (o.ttlSeconds ?? 900))
      .sign(key);
  }
}

/** The issuer's role names for Cordon's roles, as the worker maps them. */
export function issuerRoleNames(roles: CordonRole[], names: Record<CordonRole, string>): string[] {
  return roles.map((r) => names[r]);
}

/**
 * Runs the development issuer for a local stack (npm start, tests, bench, drill): returns the
 * worker environment that trusts it and a way to mint operators' tokens.
 */
export async function startDevIssuer(dataDir: string, port = 0, audience = 'cordon'): Promise<{
  issuer: string;
  env: Record<string, string>;
  token(username: string, roles: CordonRole[], o?: { ttlSeconds?: number; now?: number }): Promise<string>;
  /** A machine client's token with these issuer role names (e.g. cordon-intake for the HTTP API). */
  machineToken(client: string, issuerRoles: string[], o?: { ttlSeconds?: number }): Promise<string>;
  close(): Promise<void>;
}> {
  const dev = await DevIssuer.open(dataDir);
  const served = await dev.serve(port, audience);
  const names: Record<CordonRole, string> = { responder: 'cordon-responder', lead: 'cordon-lead' };
  return {
    issuer: served.issuer,
    env: { CORDON_OIDC_ISSUER: served.issuer, CORDON_OIDC_AUDIENCE: audience },
    token: (username, roles, o = {}) => dev.mint({ issuer: served.issuer, audience, username, roles: issuerRoleNames(roles, names), ...o }),
    machineToken: (client, issuerRoles, o = {}) => dev.mint({ issuer: served.issuer, audience, username: `service-account-${client}`, roles: issuerRoles, ...o }),
    close: served.close,
  };
}
