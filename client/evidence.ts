// `cordon evidence <sha256>`: reads an artifact from the content-addressed evidence store
// (`<evidenceDir>/<2 hex>/<sha256>.json`) and checks that its bytes still hash to its name.
// Kept small on purpose: once the store itself can read by hash, this defers to it.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CordonInputError } from './containments';

const Envelope = z.object({ containmentId: z.string(), kind: z.string(), contentType: z.string(), body: z.string() });
export type StoredEvidence = z.infer<typeof Envelope> & { sha256: string };

/** The artifact stored under `sha` (64 hex digits, or a unique prefix of at least 12). */
export async function readEvidence(evidenceDir: string, sha: string): Promise<StoredEvidence> {
  const want = sha.toLowerCase();
  if (!/^[0-9a-f]{12,64}$/.test(want)) throw new CordonInputError(`"${sha}" is not a SHA-256 (64 hex digits, or a prefix of at least 12)`);
  const dir = join(evidenceDir, want.slice(0, 2));
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}\.json$/.test(n) && n.startsWith(want));
  if (names.length === 0) throw new CordonInputError(`no evidence ${want} in ${evidenceDir}`);
  if (names.length > 1) throw new CordonInputError(`${want} is the start of ${names.length} artifacts: give more digits`);
  const full = names[0]!.slice(0, 64);
  const bytes = await readFile(join(dir, names[0]!));
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== full) throw new Error(`evidence ${full} was altered: its bytes hash to ${actual}`);
  return { ...Envelope.parse(JSON.parse(bytes.toString('utf8'))), sha256: full };
}

/** Header lines, then the body (pretty-printed when it is JSON). */
export function formatEvidence(e: StoredEvidence): string {
  let body = e.body;
  if (e.contentType === 'application/json') {
    try {
      body = JSON.stringify(JSON.parse(e.body), null, 2);
    } catch {
      // shown as stored
    }
  }
  return [`sha256       ${e.sha256} (verified)`, `containment  ${e.containmentId}`, `kind         ${e.kind}`, `content-type ${e.contentType}`, '', body].join('\n');
}
