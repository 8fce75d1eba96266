// Evidence lives outside workflow history, content-addressed: history holds only the reference
// and SHA-256, so a bundle can be checked for tampering and history stays small. The records sit
// in a write-once table: files beside the data, or PostgreSQL so that evidence one worker wrote
// can be read through any other.
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { RecordKind, type EvidenceRef } from '../workflows/schemas';
import type { EvidenceArtifact } from './providers/provider';
import { FileTable, type WriteOnceTable } from './state-store';

const Envelope = z.object({ containmentId: z.string(), kind: RecordKind, contentType: z.string(), body: z.string() });
export type StoredEvidence = z.infer<typeof Envelope>;

const SHA256 = /^[0-9a-f]{64}$/;

export class EvidenceStore {
  private readonly table: WriteOnceTable;
  private readonly uriFor: (sha256: string) => string;

  /** A folder (files `<root>/<2 hex>/<sha256>.json`), or a shared table with the URIs it gives. */
  constructor(backing: string | { table: WriteOnceTable; uri: (sha256: string) => string }) {
    if (typeof backing === 'string') {
      const files = new FileTable(backing, true);
      this.table = files;
      this.uriFor = (sha) => pathToFileURL(files.path(sha)).href;
    } else {
      this.table = backing.table;
      this.uriFor = backing.uri;
    }
  }

  get where(): string {
    return this.table.where;
  }

  async put(containmentId: string, kind: RecordKind, artifact: EvidenceArtifact): Promise<EvidenceRef> {
    const envelope = JSON.stringify({ containmentId, kind, contentType: artifact.contentType, body: artifact.body });
    const sha256 = createHash('sha256').update(envelope).digest('hex');
    await this.table.putIfAbsent(sha256, envelope); // the same bytes under the same hash: a retry writes nothing
    return { kind, uri: this.uriFor(sha256), sha256, bytes: Buffer.byteLength(envelope) };
  }

  /** The artifact stored under `sha256`, after checking that its bytes still hash to it. */
  async read(sha256: string): Promise<StoredEvidence> {
    if (!SHA256.test(sha256)) throw new Error(`"${sha256}" is not a SHA-256 (64 hex digits)`);
    const stored = await this.table.get(sha256);
    if (stored === undefined) throw new Error(`no evidence ${sha256} in ${this.table.where}`);
    const actual = createHash('sha256').update(stored).digest('hex');
    if (actual !== sha256) throw new Error(`evidence ${sha256} in ${this.table.where} was altered: its bytes hash to sha256 ${actual}`);
    return Envelope.parse(JSON.parse(stored));
  }

  /** The hashes of every artifact stored. */
  async list(): Promise<string[]> {
    return (await this.table.keys()).filter((k) => SHA256.test(k));
  }
}
