// Where the CLI finds the operator's token: --token-file, CORDON_OPERATOR_TOKEN, or the one
// `cordon login` stored (development issuer only). The token is never printed or logged.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CordonConfig } from '../activities/config';
import { CordonInputError } from './containments';

export const storedTokenFile = (config: CordonConfig) => join(config.dataDir, 'operator', 'token');

export function operatorToken(config: CordonConfig, tokenFile?: string): string {
  if (tokenFile) {
    try {
      return readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new CordonInputError(`cannot read the token file ${tokenFile}: ${(err as Error).message}`);
    }
  }
  if (process.env.CORDON_OPERATOR_TOKEN) return process.env.CORDON_OPERATOR_TOKEN.trim();
  const stored = storedTokenFile(config);
  if (existsSync(stored)) return readFileSync(stored, 'utf8').trim();
  throw new CordonInputError('no operator token: pass --token-file F or set CORDON_OPERATOR_TOKEN (your identity provider issues it); on the embedded stack, `cordon login --as NAME --role lead`');
}

export function storeToken(config: CordonConfig, token: string): string {
  const file = storedTokenFile(config);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, token, { mode: 0o600 });
  return file;
}
