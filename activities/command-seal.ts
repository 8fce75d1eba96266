// Operator tokens must never sit in workflow history in clear (signal and update arguments are
// written there). The client seals the token, together with the one command it authorizes, as
// a JWE to the workers' key (ECDH-ES, P-256); only a worker can open it, and a sealed token
// copied out of history carries nothing but that same command, which the jti check refuses.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { z } from 'zod';
import type { CommandBinding } from '../workflows/schemas';

const ALG = 'ECDH-ES+A256KW';
const ENC = 'A256GCM';

const Sealed = z
  .object({ token: z.string(), workflowId: z.string(), type: z.string(), gate: z.string().optional(), reasonSha256: z.string(), nonce: z.string().min(16) })
  .strict();

export const sealKeyFiles = (dataDir: string) => ({
  privateFile: join(dataDir, 'keys', 'command-seal.private.jwk.json'),
  publicFile: join(dataDir, 'keys', 'command-seal.public.jwk.json'),
});

const reasonHash = (reason: string) => createHash('sha256').update(reason).digest('hex');

/**
 * The workers' private sealing key: `file` if given (several workers share it), else the data
 * folder's, created on first use. A key file readable by others is refused.
 */
export async function loadOrCreateSealKey(dataDir: string, file?: string): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateFile, publicFile } = sealKeyFiles(dataDir);
  const path = file ?? privateFile;
  if (!existsSync(path)) {
    if (file) throw new Error(`CORDON_SEAL_KEY_FILE ${file} does not exist`);
    const { privateKey } = await generateKeyPair(ALG, { crv: 'P-256', extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), alg: ALG, use: 'enc', kid: `seal-${Date.now().toString(36)}` };
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, JSON.stringify(jwk), { mode: 0o600, flag: 'wx' });
  }
  const mode = statSync(path).mode & 0o077;
  if (mode) throw new Error(`the command sealing key ${path} is readable by others (mode ${(statSync(path).mode & 0o777).toString(8)}): chmod 600 it`);
  const privateJwk = JSON.parse(readFileSync(path, 'utf8')) as JWK;
  const { d: _d, ...publicJwk } = privateJwk;
  if (!file) {
    // Clients on this machine read the public half from the data folder.
    writeFileSync(publicFile, JSON.stringify(publicJwk));
    chmodSync(publicFile, 0o644);
  }
  return { privateJwk, publicJwk };
}

/** The workers' public sealing key, for clients: CORDON_SEAL_PUBLIC_KEY_FILE or the data folder's. */
export function readSealPublicKey(dataDir: string, file = process.env.CORDON_SEAL_PUBLIC_KEY_FILE): JWK {
  const path = file ?? sealKeyFiles(dataDir).publicFile;
  if (!existsSync(path)) throw new Error(`no command sealing key at ${path}: start a worker on this data folder first, or set CORDON_SEAL_PUBLIC_KEY_FILE`);
  return JSON.parse(readFileSync(path, 'utf8')) as JWK;
}

/** Seals `token` for exactly this command. */
export async function sealCommand(publicJwk: JWK, token: string, b: CommandBinding): Promise<string> {
  const key = await importJWK(publicJwk, ALG);
  const body = Sealed.parse({ token, workflowId: b.workflowId, type: b.type, gate: b.gate, reasonSha256: reasonHash(b.reason), nonce: randomBytes(16).toString('hex') });
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(body))).setProtectedHeader({ alg: ALG, enc: ENC, kid: publicJwk.kid }).encrypt(key);
}

/** Opens a sealed token; throws with the reason when it cannot be opened or was made for another command. */
export async function unsealCommand(privateJwk: JWK, sealed: string, b: CommandBinding): Promise<{ token: string; nonce: string }> {
  let body: z.infer<typeof Sealed>;
  try {
    const { plaintext } = await compactDecrypt(sealed, await importJWK(privateJwk, ALG), { keyManagementAlgorithms: [ALG], contentEncryptionAlgorithms: [ENC] });
    body = Sealed.parse(JSON.parse(new TextDecoder().decode(plaintext)));
  } catch {
    throw new Error('the token is not sealed to this worker\'s key (a raw token is never accepted: it would sit in history in clear)');
  }
  if (body.workflowId !== b.workflowId || body.type !== b.type || body.gate !== b.gate || body.reasonSha256 !== reasonHash(b.reason)) {
    throw new Error('the sealed token was made for another command (containment, type, gate or reason differ)');
  }
  return { token: body.token, nonce: body.nonce };
}
