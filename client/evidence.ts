// `cordon evidence <sha256>`: prints an artifact from the evidence store the workers write (files
// under the data folder, or PostgreSQL with CORDON_STATE_URL). The store checks that the bytes
// still hash to the name. The UI's details show a 12-digit prefix, so a unique prefix will do.
import type { EvidenceStore, StoredEvidence } from '../activities/evidence-store';
import { CordonInputError } from './containments';

export type ShownEvidence = StoredEvidence & { sha256: string };

/** The artifact stored under `sha` (64 hex digits, or a unique prefix of at least 12). */
export async function readEvidence(store: EvidenceStore, sha: string): Promise<ShownEvidence> {
  const want = sha.toLowerCase();
  if (!/^[0-9a-f]{12,64}$/.test(want)) throw new CordonInputError(`"${sha}" is not a SHA-256 (64 hex digits, or a prefix of at least 12)`);
  const matches = want.length === 64 ? [want] : (await store.list()).filter((k) => k.startsWith(want));
  if (matches.length > 1) throw new CordonInputError(`${want} is the start of ${matches.length} artifacts: give more digits`);
  if (matches.length === 0) throw new CordonInputError(`no evidence ${want} in ${store.where}`);
  const full = matches[0]!;
  try {
    return { ...(await store.read(full)), sha256: full };
  } catch (err) {
    if (/^no evidence /.test((err as Error).message)) throw new CordonInputError((err as Error).message);
    throw err;
  }
}

/** Header lines, then the body (pretty-printed when it is JSON). */
export function formatEvidence(e: ShownEvidence): string {
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
