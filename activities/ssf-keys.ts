// Cordon's own SET signing key: RS256 with 2048 bits, as the CAEP interoperability profile asks.
// The private half stays with the workers (mode 0600; several share one file through
// CORDON_SSF_SIGNING_KEY_FILE); the HTTP server publishes only the public half as JWKS.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export const SET_ALG = 'RS256';

export const signingKeyFile = (dataDir: string, file?: string) => file ?? join(dataDir, 'keys', 'ssf-signing.private.jwk.json');

/** The private signing key, created in the data folder on first use (never over an existing one). */
export async function loadOrCreateSigningKey(dataDir: string, file?: string): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const path = signingKeyFile(dataDir, file);
  if (!existsSync(path)) {
    if (file) throw new Error(`CORDON_SSF_SIGNING_KEY_FILE ${file} does not exist`);
    const { privateKey } = await generateKeyPair(SET_ALG, { modulusLength: 2048, extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), alg: SET_ALG, use: 'sig', kid: `cordon-ssf-${Date.now().toString(36)}` };
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, JSON.stringify(jwk), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // The worker and the HTTP server may start together: whoever wrote first wins.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (statSync(path).mode & 0o077) throw new Error(`the SET signing key ${path} is readable by others: chmod 600 it`);
  const privateJwk = JSON.parse(readFileSync(path, 'utf8')) as JWK;
  return { privateJwk, publicJwk: publicHalf(privateJwk) };
}

export function publicHalf(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}
