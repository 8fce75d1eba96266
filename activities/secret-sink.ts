// Where rotated credentials go. The default is a local AES-256-GCM vault; the owner reads the new
// credential with `cordon secret <ref>`. Issuing is idempotent per key, so a retried rotation
// sets the same secret instead of minting a second one.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { SecretRef, Target } from '../workflows/schemas';

export interface SecretSink {
  /** Returns the secret issued under `key`, minting and storing it first if there is none. */
  issue(key: string, owner: Target): Promise<{ secret: string; ref: SecretRef }>;
  read(ref: string): Promise<{ secret: string; owner: Target; issuedAt: string }>;
}

const Entry = z.object({ owner: z.unknown(), issuedAt: z.string(), iv: z.string(), tag: z.string(), data: z.string() });
const VaultFile = z.record(z.string(), Entry);

export class LocalVault implements SecretSink {
  private readonly dir: string;
  private key?: Buffer;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string, private readonly keyBase64?: string) {
    this.dir = resolve(dir);
  }

  private get file() {
    return join(this.dir, 'vault.json');
  }

  private async loadKey(): Promise<Buffer> {
    if (this.key) return this.key;
    if (this.keyBase64) {
      const k = Buffer.from(this.keyBase64, 'base64');
      if (k.length !== 32) throw new Error('CORDON_VAULT_KEY must be 32 bytes, base64-encoded');
      return (this.key = k);
    }
    const keyFile = join(this.dir, 'vault.key');
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    try {
      return (this.key = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64'));
    } catch {
      const k = randomBytes(32);
      await writeFile(keyFile, k.toString('base64'), { mode: 0o600, flag: 'wx' }).catch(async () => undefined);
      await chmod(keyFile, 0o600);
      return (this.key = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64'));
    }
  }

  private async entries(): Promise<z.infer<typeof VaultFile>> {
    try {
      return VaultFile.parse(JSON.parse(await readFile(this.file, 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
  }

  static refFor(key: string): string {
    return `vault:${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;
  }

  issue(key: string, owner: Target): Promise<{ secret: string; ref: SecretRef }> {
    // Serialised so two retries of one rotation cannot both mint.
    const run = this.chain.then(async () => {
      const aes = await this.loadKey();
      const ref = LocalVault.refFor(key);
      const all = await this.entries();
      let secret: string;
      const existing = all[ref];
      if (existing) {
        secret = this.decrypt(aes, ref, existing);
      } else {
        secret = randomBytes(24).toString('base64url');
        const iv = randomBytes(12);
        const c = createCipheriv('aes-256-gcm', aes, iv);
        c.setAAD(Buffer.from(ref));
        const data = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
        all[ref] = { owner, issuedAt: new Date().toISOString(), iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
        await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
        const tmp = `${this.file}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(all, null, 1), { mode: 0o600 });
        await rename(tmp, this.file);
      }
      const fingerprint = createHash('sha256').update(secret).digest('hex').slice(0, 12);
      return { secret, ref: { sink: 'local-vault', ref, fingerprint } };
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private decrypt(aes: Buffer, ref: string, e: z.infer<typeof Entry>): string {
    const d = createDecipheriv('aes-256-gcm', aes, Buffer.from(e.iv, 'base64'));
    d.setAAD(Buffer.from(ref)); // binds each ciphertext to its reference
    d.setAuthTag(Buffer.from(e.tag, 'base64'));
    return d.update(Buffer.from(e.data, 'base64')).toString('utf8') + d.final('utf8');
  }

  /** Every reference in the vault (for audits and the test suite's secret scan). */
  async refs(): Promise<string[]> {
    return Object.keys(await this.entries());
  }

  async read(ref: string): Promise<{ secret: string; owner: Target; issuedAt: string }> {
    const aes = await this.loadKey();
    const e = (await this.entries())[ref];
    if (!e) throw new Error(`no secret ${ref} in the vault at ${this.dir}`);
    return { secret: this.decrypt(aes, ref, e), owner: e.owner as Target, issuedAt: e.issuedAt };
  }
}
