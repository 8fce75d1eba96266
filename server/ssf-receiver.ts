// The Shared Signals push receiver (RFC 8935, SSF 1.0): verifies a SET against its transmitter's
// keys with jose (issuer, audience, typ, allowed algorithms), refuses SETs carrying sub or exp,
// deduplicates on jti through a receipt workflow whose id is derived from issuer and jti (so the
// memory is Temporal's: it survives restarts and is shared by every Cordon server), and turns a
// mapped event into a signal. Unmapped events are acknowledged and recorded, never acted on.
import { createHash } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { TransmitterConfig, SsfSettings } from '../activities/ssf-config';
import { submitSignal } from '../client/containments';
import { describeIssues } from '../workflows/schemas';
import { EVENT_PAYLOADS, SET_TYP, SetClaims, subjectOf, type PushErrorCode } from '../workflows/ssf-events';
import { mapSet } from '../workflows/ssf-mapping';
import type { SetReceipt } from '../workflows/ssf-receipt';

export type PushAnswer =
  | { status: 202; outcome: 'containment' | 'recorded' | 'duplicate'; transmitter: string; event: string; detail: string }
  | { status: 400 | 503; err: PushErrorCode | 'temporarily_unavailable'; description: string; transmitter?: string };

const refuse = (err: PushErrorCode, description: string, transmitter?: string): PushAnswer => ({ status: 400, err, description, transmitter });
const SKEW_S = 300;

export const receiptWorkflowId = (iss: string, jti: string) => `cordon-ssf/${createHash('sha256').update(`${iss}\n${jti}`).digest('hex').slice(0, 40)}`;

export class SetReceiver {
  private readonly keys = new Map<string, JWTVerifyGetKey>();

  constructor(
    private readonly settings: SsfSettings,
    private readonly client: Client,
    private readonly taskQueue: string,
    /** A SET older than this is refused: Temporal remembers its jti at least this long. */
    private readonly maxAgeMs: number,
  ) {
    for (const t of settings.transmitters) {
      // Remote sets are cached and refetched on an unknown kid (at most every 30 s).
      this.keys.set(t.name, t.jwks ? createLocalJWKSet(t.jwks as Parameters<typeof createLocalJWKSet>[0]) : createRemoteJWKSet(new URL(t.jwksUrl!), { timeoutDuration: 5000, cooldownDuration: 30_000 }));
    }
  }

  async receive(compact: unknown): Promise<PushAnswer> {
    if (typeof compact !== 'string' || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(compact.trim())) {
      return refuse('invalid_request', 'the body is not a signed SET (a compact JWS; encrypted SETs are not accepted)');
    }
    const jws = compact.trim();
    let unverified;
    try {
      unverified = decodeJwt(jws);
    } catch {
      return refuse('invalid_request', 'the SET cannot be decoded');
    }
    const t = this.settings.transmitters.find((x) => x.issuer === unverified.iss);
    if (!t) return refuse('invalid_issuer', `issuer ${String(unverified.iss ?? '(none)').slice(0, 200)} is not a configured transmitter`);
    // A SET is not an access token: these are refused whoever signed them.
    if ('sub' in unverified) return refuse('invalid_request', 'a SET must not carry sub (SSF: the subject is sub_id)', t.name);
    if ('exp' in unverified) return refuse('invalid_request', 'a SET must not carry exp', t.name);

    let payload;
    try {
      ({ payload } = await jwtVerify(jws, this.keys.get(t.name)!, { issuer: t.issuer, audience: t.audience, typ: SET_TYP, algorithms: t.algorithms }));
    } catch (err) {
      return this.joseRefusal(err, t);
    }
    const parsed = SetClaims.safeParse(payload);
    if (!parsed.success) return refuse('invalid_request', `the SET is malformed: ${describeIssues(parsed.error)}`, t.name);
    const c = parsed.data;
    const nowS = Date.now() / 1000;
    if (c.iat > nowS + SKEW_S) return refuse('invalid_request', 'the SET was issued in the future', t.name);
    if (nowS - c.iat > this.maxAgeMs / 1000) return refuse('invalid_request', `the SET was issued ${Math.round(nowS - c.iat)} s ago: older than the ${this.maxAgeMs / 1000} s Cordon remembers jtis for`, t.name);
    const [type, event] = Object.entries(c.events)[0]!;
    if (t.events && !t.events.includes(type)) return refuse('access_denied', `transmitter ${t.name} is not allowed to send ${type}`, t.name);
    const shape = EVENT_PAYLOADS[type]?.safeParse(event);
    if (shape && !shape.success) return refuse('invalid_request', `the ${type} event is malformed: ${describeIssues(shape.error)}`, t.name);

    const workflowId = receiptWorkflowId(c.iss, c.jti);
    try {
      await this.client.workflow.getHandle(workflowId).describe();
      return { status: 202, outcome: 'duplicate', transmitter: t.name, event: type, detail: `jti already received (${workflowId}): nothing changed` };
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    // Signal first, receipt second: a crash between them leaves no receipt, so the transmitter's
    // retry comes in again and the signal (same signalId) changes nothing the second time.
    const signalId = `ssf-${workflowId.slice('cordon-ssf/'.length)}`;
    const mapped = mapSet(t.mapping, c, { signalId, source: `ssf:${t.name}/${type.split('/').pop()}` });
    let containmentId: string | undefined;
    if (mapped.kind === 'signal') containmentId = (await submitSignal(this.client, mapped.signal, { taskQueue: this.taskQueue })).workflowId;
    const receipt: SetReceipt = {
      receivedAt: new Date().toISOString(),
      transmitter: t.name,
      issuer: c.iss,
      jti: c.jti,
      iat: c.iat,
      eventType: type,
      subjectFormat: subjectOf(c).format,
      setSha256: createHash('sha256').update(jws).digest('hex'),
      outcome: mapped.kind === 'signal' ? 'containment' : 'recorded',
      detail: mapped.detail,
      ...(containmentId ? { containmentId, signalId } : {}),
    };
    try {
      await this.client.workflow.start('sharedSignalReceipt', {
        workflowId,
        taskQueue: this.taskQueue,
        args: [receipt],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        staticSummary: `SET ${type.split('/').pop()} from ${t.name}: ${receipt.outcome}`,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err; // a concurrent delivery of the same jti won
    }
    return { status: 202, outcome: receipt.outcome, transmitter: t.name, event: type, detail: mapped.detail };
  }

  private joseRefusal(err: unknown, t: TransmitterConfig): PushAnswer {
    const e = err as Error & { code?: string; claim?: string };
    switch (e.code) {
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        return refuse('invalid_key', `the SET's algorithm is not accepted from ${t.name} (allowed: ${t.algorithms.join(', ')})`, t.name);
      case 'ERR_JWKS_NO_MATCHING_KEY':
      case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      case 'ERR_JOSE_NOT_SUPPORTED':
        return refuse('invalid_key', `the SET is signed with a key ${t.name} does not publish`, t.name);
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return refuse('authentication_failed', `the SET's signature does not verify against ${t.name}'s keys`, t.name);
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        if (e.claim === 'aud') return refuse('invalid_audience', `the SET is not addressed to this receiver (audience ${t.audience})`, t.name);
        if (e.claim === 'iss') return refuse('invalid_issuer', 'the SET names another issuer', t.name);
        return refuse('invalid_request', `the SET's ${e.claim ?? 'claims'} is wrong: ${e.message}`, t.name);
      case 'ERR_JWKS_TIMEOUT':
        return { status: 503, err: 'temporarily_unavailable', description: `${t.name}'s keys could not be fetched: try again`, transmitter: t.name };
      case 'ERR_JWS_INVALID':
      case 'ERR_JWT_INVALID':
        return refuse('invalid_request', `the SET is not a valid JWS: ${e.message}`, t.name);
      default:
        // The transmitter's JWKS endpoint failed (network, HTTP error): the SET may be fine, so let it retry.
        return { status: 503, err: 'temporarily_unavailable', description: `${t.name}'s keys could not be checked: ${e.message.slice(0, 200)}`, transmitter: t.name };
    }
  }
}

/**
 * How old a SET may be: the configured maximum, but never longer than the namespace keeps a
 * closed receipt workflow (minus a margin), or a jti could be forgotten and replayed.
 */
export async function replayWindowMs(client: Client, wantedMs: number): Promise<{ ms: number; retentionMs?: number }> {
  const ns = await client.workflowService.describeNamespace({ namespace: client.options.namespace });
  const ttl = ns.config?.workflowExecutionRetentionTtl;
  const retentionMs = ttl?.seconds ? Number(ttl.seconds) * 1000 : undefined;
  if (!retentionMs) return { ms: wantedMs };
  return { ms: Math.max(60_000, Math.min(wantedMs, retentionMs - 10 * 60_000)), retentionMs };
}
