// Evidence lives outside workflow history, content-addressed: history holds only the reference
// and SHA-256, so a bundle can be checked for tampering and history stays small.
import { createHash } from 'node:crypto';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { EvidenceRef, RecordKind } from '../workflows/schemas';
import type { EvidenceArtifact } from './providers/provider';

export class EvidenceStore {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  async put(containmentId: string, kind: RecordKind, artifact: EvidenceArtifact): Promise<EvidenceRef> {
    const envelope = JSON.stringify({ containmentId, kind, contentType: artifact.contentType, body: artifact.body });
    const sha256 = createHash('sha256').update(envelope).digest('hex');
    const dir = join(this.root, sha256.slice(0, 2));
    const file = join(dir, `${sha256}.json`);
    const exists = await stat(file).then(() => true, () => false);
    if (!exists) {
      await mkdir(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, envelope, { mode: 0o600 });
      await rename(tmp, file); // atomic: a crash never leaves a half-written artifact under its hash
    }
    return { kind, uri: `file://${file}`, sha256, bytes: Buffer.byteLength(envelope) };
  }
}
