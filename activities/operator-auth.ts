// Verifies operators on the worker, so commands sent straight through Temporal obey the same
// rules as the CLI: the token is opened from its seal, then checked against the issuer's JWKS
// (signature, issuer, audience, expiry). Only who it proved comes back, never the token.
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { CommandBinding, CordonRole, Principal, Verdict } from '../workflows/schemas';
import { unsealCommand } from './command-seal';

export interface OidcSettings {
  issuer?: string;
  audience: string;
  /** Dotted path of the roles claim (Keycloak: realm_access.roles). */
  rolesClaim: string;
  /** The issuer's role names for each Cordon role. */
  roleNames: Record<CordonRole, string>;
  /** Overrides discovery (`<issuer>/.well-known/openid-configuration`). */
  jwksUrl?: string;
}

const Discovery = z.object({ issuer: z.string(), jwks_uri: z.url() });
const ALGORITHMS = ['RS256', 'ES256', 'PS256', 'EdDSA'];

export class OperatorVerifier {
  private jwks?: Promise<ReturnType<typeof createRemoteJWKSet>>;

  constructor(
    readonly oidc: OidcSettings,
    private readonly sealKey?: JWK,
  ) {}

  private keySet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    const issuer = this.oidc.issuer!;
    this.jwks ??= (async () => {
      if (this.oidc.jwksUrl) return createRemoteJWKSet(new URL(this.oidc.jwksUrl));
      const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`OIDC discovery at ${issuer} answered ${res.status}`);
      const d = Discovery.parse(await res.json());
      if (d.issuer !== issuer) throw new Error(`OIDC discovery at ${issuer} names another issuer (${d.issuer})`);
      return createRemoteJWKSet(new URL(d.jwks_uri), { cooldownDuration: 30_000 });
    })().catch((err) => {
      this.jwks = undefined; // try discovery again next time
      throw err;
    });
    return this.jwks;
  }

  /** Verifies a raw access token; throws with the reason when it is not valid. */
  async principal(token: string): Promise<Principal> {
    return (await this.caller(token)).principal;
  }

  /** As principal(), with every role name the issuer granted (the HTTP API's intake role is not a Cordon role). */
  async caller(token: string): Promise<{ principal: Principal; issuerRoles: string[] }> {
    if (!this.oidc.issuer) throw new Error('no OIDC issuer is configured on this worker (CORDON_OIDC_ISSUER), so no command can be authenticated');
    const { payload } = await jwtVerify(token, await this.keySet(), { issuer: this.oidc.issuer, audience: this.oidc.audience, algorithms: ALGORITHMS, clockTolerance: 5 });
    if (!payload.sub) throw new Error('the token has no subject');
    if (!payload.jti) throw new Error('the token has no jti, so its replay could not be detected');
    if (!payload.exp) throw new Error('the token has no expiry');
    const granted = new Set(claimAt(payload, this.oidc.rolesClaim));
    const roles = (Object.keys(this.oidc.roleNames) as CordonRole[]).filter((r) => granted.has(this.oidc.roleNames[r]));
    const principal = { iss: payload.iss!, sub: payload.sub, username: String(payload.preferred_username ?? payload.sub).slice(0, 200), roles, jti: payload.jti, exp: payload.exp };
    return { principal, issuerRoles: [...granted] };
  }

  /** The activity: a verdict, never an exception for a bad token (a refusal is evidence, recorded by the workflow). */
  async verifyOperator(sealed: string, binding: CommandBinding): Promise<Verdict> {
    let opened: { token: string; nonce: string };
    try {
      if (!this.sealKey) throw new Error('this worker has no command sealing key');
      opened = await unsealCommand(this.sealKey, sealed, binding);
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
    const token = opened.token;
    try {
      return { ok: true, principal: await this.principal(token), seal: opened.nonce };
    } catch (err) {
      return { ok: false, reason: `token refused: ${describeJoseError(err)}`, claimed: claimed(token) };
    }
  }
}

/** Who an unverified token says it is (for the record of a refused attempt). */
function claimed(token: string): string | undefined {
  try {
    const p = decodeJwt(token);
    return `${String(p.preferred_username ?? p.sub ?? '?').slice(0, 100)} from ${String(p.iss ?? '?').slice(0, 200)}`;
  } catch {
    return undefined;
  }
}

export function describeJoseError(err: unknown): string {
  const e = err as Error & { code?: string; claim?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return 'it has expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'its signature does not verify against the issuer\'s keys';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'it is signed with a key the issuer does not publish';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `its ${e.claim ?? 'claims'} is wrong (${e.message})`;
    default:
      return e.message;
  }
}

function claimAt(payload: JWTPayload, path: string): string[] {
  let v: unknown = payload;
  for (const part of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? v.split(' ') : [];
}
