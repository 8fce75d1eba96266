// Bearer tokens for the HTTP API, verified by the same OperatorVerifier the workers use (issuer,
// audience, signature against the JWKS, expiry): no second verifier. Runs on the request's
// headers, before its body is read, so an anonymous caller costs nothing and changes nothing.
import { describeJoseError, type OperatorVerifier } from '../activities/operator-auth';
import type { Access, Caller } from './routes';

export interface Refusal {
  status: 401 | 403;
  error: 'unauthenticated' | 'forbidden';
  message: string;
  /** RFC 6750 challenge (no token details beyond the reason). */
  challenge: string;
}

const challenge = (error?: string, description?: string) =>
  `Bearer realm="cordon"${error ? `, error="${error}"` : ''}${description ? `, error_description="${description.replace(/["\\]/g, "'").slice(0, 200)}"` : ''}`;

export function bearerAuth(verifier: OperatorVerifier, intakeRole: string) {
  return async (access: Exclude<Access, 'none' | 'set'>, authorization: string | undefined): Promise<Caller | Refusal> => {
    const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(authorization ?? '');
    if (!m) {
      const message = authorization ? 'the Authorization header is not "Bearer <token>"' : 'a bearer token is required (an OIDC access token)';
      return { status: 401, error: 'unauthenticated', message, challenge: challenge(authorization ? 'invalid_request' : undefined) };
    }
    const token = m[1]!;
    let verified;
    try {
      verified = await verifier.caller(token);
    } catch (err) {
      const message = `token refused: ${describeJoseError(err)}`;
      return { status: 401, error: 'unauthenticated', message, challenge: challenge('invalid_token', message) };
    }
    const { principal, issuerRoles } = verified;
    const names = verifier.oidc.roleNames;
    if (access === 'intake' && !issuerRoles.includes(intakeRole)) {
      const message = `submitting signals needs the ${intakeRole} role; ${principal.username} has ${issuerRoles.join(', ') || 'none'}`;
      return { status: 403, error: 'forbidden', message, challenge: challenge('insufficient_scope', message) };
    }
    if ((access === 'reader' || access === 'operator') && principal.roles.length === 0) {
      const message = `this needs the ${names.responder} or ${names.lead} role; ${principal.username} has neither`;
      return { status: 403, error: 'forbidden', message, challenge: challenge('insufficient_scope', message) };
    }
    return { principal, issuerRoles, token };
  };
}

export const isRefusal = (x: Caller | Refusal): x is Refusal => 'status' in x;
