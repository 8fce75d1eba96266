// A PostgreSQL SCRAM-SHA-256 password verifier computed on Cordon's side (RFC 5802/7677), so
// `ALTER ROLE … PASSWORD` never carries the plain password: with statement logging on, the
// server would otherwise write it into its log. Login with the password works as usual.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

const ITERATIONS = 4096; // PostgreSQL's default scram_iterations

export function scramSha256Verifier(password: string, salt: Buffer = randomBytes(16)): string {
  // Generated secrets are ASCII, for which SASLprep is the identity; refuse anything else.
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error('SCRAM verifier: the password must be printable ASCII');
  const salted = pbkdf2Sync(password, salt, ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
