// The Shared Signals vocabulary (SSF 1.0, CAEP 1.0, RISC 1.0; RFC 8417 SETs, RFC 9493 subject
// identifiers), as zod schemas: what Cordon accepts from transmitters and what it sends.
// Pure module: the receiver, the transmitter's activities and the workflow all import it.
import { z } from 'zod';

export const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
export const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
export const PUSH_DELIVERY = 'urn:ietf:rfc:8935';
export const SET_TYP = 'secevent+jwt';
export const SET_MEDIA_TYPE = 'application/secevent+jwt';

/** What Cordon transmits, after which step of the ladder. */
export const EMITTED = {
  'session-revoked': `${CAEP}session-revoked`,
  'credential-change': `${CAEP}credential-change`,
  'account-disabled': `${RISC}account-disabled`,
} as const;
export const EmittedKind = z.enum(['session-revoked', 'credential-change', 'account-disabled']);
export type EmittedKind = z.infer<typeof EmittedKind>;

/** RFC 8935 §2.4 error codes (SSF adds invalid_state, which a push receiver never needs). */
export const PushErrorCode = z.enum(['invalid_request', 'invalid_key', 'invalid_issuer', 'invalid_audience', 'authentication_failed', 'access_denied']);
export type PushErrorCode = z.infer<typeof PushErrorCode>;

const text = z.string().min(1).max(512);

/** The simple subject formats Cordon can map to an identity (RFC 9493). */
export const SimpleSubject = z.discriminatedUnion('format', [
  z.object({ format: z.literal('email'), email: z.string().regex(/^[^\s@]{1,64}@[^\s@]{1,190}$/, 'email is an address') }).loose(),
  z.object({ format: z.literal('iss_sub'), iss: text, sub: text }).loose(),
  z.object({ format: z.literal('opaque'), id: text }).loose(),
]);
export type SimpleSubject = z.infer<typeof SimpleSubject>;

export const COMPLEX_MEMBERS = ['user', 'device', 'session', 'application', 'tenant', 'org_unit', 'group'] as const;

/** Any subject identifier: its format is checked; formats Cordon cannot map are acknowledged, not refused. */
export const SubjectId = z.object({ format: z.string().min(1).max(64) }).loose();
export type SubjectId = z.infer<typeof SubjectId>;

/**
 * A SET's claims as SSF 1.0 requires them: `sub_id` at the top, exactly one event, and no `sub`
 * or `exp` (a SET is not an access token: RFC 8417 §2.2 and SSF §4.1.4).
 */
export const SetClaims = z
  .object({
    iss: text,
    jti: text,
    iat: z.number().int().positive(),
    aud: z.union([text, z.array(text).min(1)]),
    txn: text.optional(),
    /** Mandatory in SSF 1.0; drafts before it put `subject` inside the event, which is accepted too. */
    sub_id: SubjectId.optional(),
    events: z.record(z.url({ message: 'an event type is a URI' }), z.record(z.string(), z.unknown())).refine((e) => Object.keys(e).length === 1, 'a SET carries exactly one event'),
  })
  .loose()
  .superRefine((c, ctx) => {
    if ('sub' in c) ctx.addIssue({ code: 'custom', path: ['sub'], message: 'a SET must not carry sub (use sub_id)' });
    if ('exp' in c) ctx.addIssue({ code: 'custom', path: ['exp'], message: 'a SET must not carry exp' });
    if (!c.sub_id && !SubjectId.safeParse(Object.values(c.events)[0]?.subject).success) ctx.addIssue({ code: 'custom', path: ['sub_id'], message: 'a SET names its subject in sub_id' });
  });
export type SetClaims = z.infer<typeof SetClaims>;

const Instant = z.number().int().positive();
const Entity = z.enum(['admin', 'user', 'policy', 'system']);
/** Required fields of the events Cordon maps or sends, so a malformed payload is refused (invalid_request). */
export const EVENT_PAYLOADS: Record<string, z.ZodType> = {
  [`${CAEP}session-revoked`]: z.object({ event_timestamp: Instant.optional(), initiating_entity: Entity.optional() }).loose(),
  [`${CAEP}credential-change`]: z.object({ credential_type: text, change_type: z.enum(['create', 'revoke', 'update', 'delete']) }).loose(),
  [`${CAEP}risk-level-change`]: z.object({ current_level: z.enum(['LOW', 'MEDIUM', 'HIGH']), principal: text.optional() }).loose(),
  [`${CAEP}token-claims-change`]: z.object({ claims: z.record(z.string(), z.unknown()) }).loose(),
  [`${RISC}credential-compromise`]: z.object({ credential_type: text }).loose(),
  [`${RISC}account-disabled`]: z.object({ reason: z.enum(['hijacking', 'bulk-account']).optional() }).loose(),
};

/** The SET's subject: `sub_id`, or the event's own `subject` (pre-1.0 transmitters). */
export function subjectOf(c: SetClaims): SubjectId {
  return c.sub_id ?? SubjectId.parse(Object.values(c.events)[0]!.subject);
}
