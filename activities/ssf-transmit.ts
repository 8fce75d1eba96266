// The transmitter's activities: sign a SET with Cordon's key and push it to one receiver
// (RFC 8935). The jti is a hash of the workflow's key, so every retry sends the same SET and the
// receiver can deduplicate it. A receiver's refusal (4xx) is final; anything else is retried.
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { SignJWT, importJWK, type JWK } from 'jose';
import type { PushResult, SecurityEventRequest, TransmitActivities } from '../workflows/transmit';
import { EMITTED, SET_MEDIA_TYPE, SET_TYP, type EmittedKind } from '../workflows/ssf-events';
import type { Target } from '../workflows/schemas';
import type { ReceiverConfig, SsfSettings } from './ssf-config';
import { SET_ALG } from './ssf-keys';

export const jtiFor = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 32);

/** sub_id for an identity: an email address as such (relying parties key users by it), else opaque. */
export function subjectFor(t: Target, r: Pick<ReceiverConfig, 'subjectFormat'>): Record<string, string> {
  if (r.subjectFormat === 'auto' && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(t.identityId)) return { format: 'email', email: t.identityId };
  return { format: 'opaque', id: t.identityId };
}

function eventPayload(kind: EmittedKind, t: Target, iat: number): Record<string, unknown> {
  const reason = { en: `Cordon containment of ${t.kind} ${t.identityId} on ${t.provider}` };
  switch (kind) {
    case 'session-revoked':
      return { event_timestamp: iat, initiating_entity: 'policy', reason_admin: reason };
    case 'credential-change':
      // CAEP names no type for a machine secret; a rotated password, key or token is a new secret all the same.
      return { event_timestamp: iat, initiating_entity: 'policy', credential_type: 'password', change_type: 'update', reason_admin: reason };
    case 'account-disabled':
      return { reason: 'hijacking' };
  }
}

export interface TransmitDeps {
  settings: SsfSettings;
  /** Cordon's issuer (its public URL). */
  issuer: string;
  signingKey: JWK;
  env?: NodeJS.ProcessEnv;
}

/** The receivers configured on this worker that want `kind`, by name. */
export const receiversFor = (settings: SsfSettings, kind: EmittedKind): string[] => settings.receivers.filter((r) => r.events.includes(kind)).map((r) => r.name);

export function createTransmitActivities(d: TransmitDeps): TransmitActivities {
  const env = d.env ?? process.env;
  const key = importJWK(d.signingKey, SET_ALG);
  return {
    ssfReceivers: async (kind) => receiversFor(d.settings, kind),
    pushSecurityEvent: async (name: string, e: SecurityEventRequest): Promise<PushResult> => {
      const r = d.settings.receivers.find((x) => x.name === name);
      if (!r) throw ApplicationFailure.nonRetryable(`receiver ${name} is no longer configured on this worker`, 'InvalidConfiguration');
      const jti = jtiFor(e.key);
      const set = await new SignJWT({ sub_id: subjectFor(e.target, r), events: { [EMITTED[e.kind]]: eventPayload(e.kind, e.target, e.iat) }, txn: e.containmentId })
        .setProtectedHeader({ alg: SET_ALG, kid: d.signingKey.kid, typ: SET_TYP })
        .setIssuer(d.issuer)
        .setAudience(r.audience)
        .setIssuedAt(e.iat)
        .setJti(jti)
        .sign(await key);
      const headers: Record<string, string> = { 'content-type': SET_MEDIA_TYPE, accept: 'application/json' };
      if (r.authorizationEnv) {
        const token = env[r.authorizationEnv];
        if (!token) throw ApplicationFailure.nonRetryable(`receiver ${name}: ${r.authorizationEnv} is not set`, 'InvalidConfiguration');
        headers.authorization = `Bearer ${token}`;
      }
      const res = await fetch(r.endpoint, { method: 'POST', headers, body: set, signal: AbortSignal.timeout(10_000), redirect: 'error' });
      if (res.status === 202 || res.status === 200) return { receiver: name, endpoint: r.endpoint, jti, status: res.status };
      const body = (await res.text()).slice(0, 300);
      const why = `receiver ${name} answered ${res.status}: ${body.replace(/\s+/g, ' ')}`;
      // 4xx is the receiver's verdict on this SET: the same SET would be refused again.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw ApplicationFailure.nonRetryable(why, 'ReceiverRefused');
      throw new Error(why);
    },
  };
}
