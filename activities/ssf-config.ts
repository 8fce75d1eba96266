// The Shared Signals file (CORDON_SSF_FILE): the transmitters whose SETs Cordon accepts, with
// the mapping that turns their events into signals, and the receivers Cordon pushes its own SETs
// to. Validated at start-up by the HTTP server and the worker alike; an invalid file stops them,
// every problem named. Secrets never sit in the file: a receiver's bearer token comes from an
// environment variable it names.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULT_SSF_MAPPING, MappingError, SsfMapping, parseMapping } from '../workflows/ssf-mapping';
import { EmittedKind } from '../workflows/ssf-events';
import { describeIssues } from '../workflows/schemas';

const Name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a name is lowercase letters, digits and dashes');
export const SET_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;

const Transmitter = z
  .object({
    name: Name,
    issuer: z.string().min(1).max(512),
    jwksUrl: z.url().optional(),
    /** A JWK Set on disk, relative to the SSF file. */
    jwksFile: z.string().min(1).optional(),
    /** What the transmitter puts in `aud` for Cordon. */
    audience: z.string().min(1).max(512),
    algorithms: z.array(z.enum(SET_ALGORITHMS)).min(1).default(['RS256']),
    /** Event types this transmitter may send; another one is refused (access_denied). Default: any. */
    events: z.array(z.url()).min(1).optional(),
    /** How its events become signals (default: the shipped mapping). */
    mapping: SsfMapping.optional(),
    /** A mapping file, relative to the SSF file. */
    mappingFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.jwksUrl === undefined) !== (t.jwksFile === undefined), { message: 'a transmitter has exactly one of jwksUrl and jwksFile', path: ['jwksUrl'] })
  .refine((t) => t.mapping === undefined || t.mappingFile === undefined, { message: 'mapping and mappingFile are exclusive', path: ['mapping'] });

const Receiver = z
  .object({
    name: Name,
    /** The receiver's RFC 8935 push endpoint. */
    endpoint: z.url({ protocol: /^https?$/, message: 'endpoint is an http(s) URL' }),
    audience: z.string().min(1).max(512),
    events: z.array(EmittedKind).min(1).default(['session-revoked', 'credential-change', 'account-disabled']),
    /** The environment variable holding the bearer token the receiver expects (never the token itself). */
    authorizationEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'authorizationEnv names an environment variable').optional(),
    /** How the identity is named in sub_id: an email address as `email` when it is one, else `opaque`. */
    subjectFormat: z.enum(['auto', 'opaque']).default('auto'),
  })
  .strict();

const SsfFile = z
  .object({
    transmitters: z.array(Transmitter).default([]),
    receivers: z.array(Receiver).default([]),
  })
  .strict();

export type TransmitterConfig = Omit<z.infer<typeof Transmitter>, 'mapping' | 'mappingFile' | 'jwksFile'> & { mapping: SsfMapping; jwks?: { keys: unknown[] } };
export type ReceiverConfig = z.infer<typeof Receiver>;
export interface SsfSettings {
  transmitters: TransmitterConfig[];
  receivers: ReceiverConfig[];
}

export class SsfConfigError extends Error {
  override name = 'SsfConfigError';
}

const JwkSet = z.object({ keys: z.array(z.object({ kty: z.string() }).loose()).min(1, 'a JWK Set has at least one key') }).loose();

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SsfConfigError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Names and issuers used twice (checked on the raw document, so they are named beside every other problem). */
function duplicates(document: unknown): string[] {
  const out: string[] = [];
  const list = (key: string) => {
    const v = document && typeof document === 'object' ? (document as Record<string, unknown>)[key] : undefined;
    return Array.isArray(v) ? v.map((x) => (x && typeof x === 'object' ? (x as Record<string, unknown>) : {})) : [];
  };
  for (const [key, field] of [['transmitters', 'name'], ['receivers', 'name'], ['transmitters', 'issuer']] as const) {
    const values = list(key).map((x) => x[field]);
    values.forEach((v, i) => v !== undefined && values.indexOf(v) < i && out.push(`${key}.${i}.${field}: "${String(v).slice(0, 100)}" is used twice`));
  }
  return out;
}

/** Parses an SSF document; `base` resolves the files it names. Throws naming every problem. */
export function parseSsfSettings(document: unknown, base: string, where = 'SSF settings'): SsfSettings {
  const r = SsfFile.safeParse(document);
  const problems = duplicates(document);
  if (!r.success) throw new SsfConfigError(`${where}: ${[describeIssues(r.error), ...problems].join('; ')}`);
  const transmitters = r.data.transmitters.map((t, i) => {
    const { mapping: raw, mappingFile, jwksFile, ...rest } = t;
    let mapping = raw ?? DEFAULT_SSF_MAPPING;
    try {
      if (mappingFile) mapping = parseMapping(readJson(resolve(base, mappingFile), 'mapping'));
    } catch (err) {
      if (!(err instanceof MappingError || err instanceof SsfConfigError)) throw err;
      problems.push(`transmitters.${i}.mapping: ${err.message}`);
    }
    let jwks: { keys: unknown[] } | undefined;
    if (jwksFile) {
      try {
        const set = JwkSet.safeParse(readJson(resolve(base, jwksFile), 'JWK Set'));
        if (set.success) jwks = set.data;
        else problems.push(`transmitters.${i}.jwksFile: ${describeIssues(set.error)}`);
      } catch (err) {
        problems.push(`transmitters.${i}.jwksFile: ${(err as Error).message}`);
      }
    }
    return { ...rest, mapping, jwks };
  });
  if (problems.length) throw new SsfConfigError(`${where}: ${problems.join('; ')}`);
  return { transmitters, receivers: r.data.receivers };
}

/** Reads CORDON_SSF_FILE (none: no transmitter trusted, no receiver pushed to). */
export function loadSsfSettings(file?: string): SsfSettings {
  if (!file) return { transmitters: [], receivers: [] };
  return parseSsfSettings(readJson(file, 'SSF file'), dirname(file), file);
}
