// Where rotated credentials go: a vault of AES-256-GCM ciphertexts over a write-once table (files
// beside the data by default, PostgreSQL when several workers share it). The owner reads the new
// credential with `cordon secret <ref>`. Issuing is put-if-absent per idempotency key, so a
// rotation retried by any worker or process gets the secret the first attempt minted.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { SecretRef, Target } from '../workflows/schemas';
import { FileTable, type WriteOnceTable } from './state-store';

export interface SecretSink {
  /** Returns the secret issued under `key`, minting and storing it first if there is none. */
  issue(key: string, owner: Target): Promise<{ secret: string; ref: SecretRef }>;
  read(ref: string): Promise<{ secret: string; owner: Target; issuedAt: string }>;
}

const Entry = z.object({ owner: z.unknown(), issuedAt: z.string(), iv: z.string(), tag: z.string(), data: z.string() });
type Entry = z.infer<typeof Entry>;

/** A 32-byte key, base64: what CORDON_VAULT_KEY and a key file hold. */
export function parseVaultKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[A-Za-z0-9+/]+={0,2}$/.test(t) ? Buffer.from(t, 'base64') : Buffer.alloc(0);
  if (key.length !== 32) throw new Error(`${where} must be 32 bytes, base64-encoded (44 characters; make a key with \`openssl rand -base64 32\`)`);
  return key;
}

/**
 * Reads a key file, refusing one that others can read: the key opens every secret in the vault.
 * With `create`, a missing file is generated (mode 0600) first; two processes creating it at once
 * end up with the same key (link-once, like the table's records).
 */
export async function loadKeyFile(file: string, create: boolean): Promise<Buffer> {
  let st = await stat(file).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (!st) {
    if (!create) throw new Error(`vault key file ${file} does not exist`);
    await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
    await link(tmp, file).catch((err: NodeJS.ErrnoException) => (err.code === 'EEXIST' ? undefined : Promise.reject(err)));
    await unlink(tmp).catch(() => undefined);
    st = await stat(file);
  }
  const mode = st.mode & 0o777;
  if (mode & 0o077) throw new Error(`vault key file ${file} has mode 0${mode.toString(8)}: it must be readable by its owner only (chmod 600 ${file})`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw new Error(`vault key file ${file} belongs to uid ${st.uid}, not to this user (uid ${process.getuid()})`);
  return parseVaultKey(await readFile(file, 'utf8'), `vault key file ${file}`);
}

/** Where the records' keys come from: the table's key of a reference, and back. */
const recordKey = (ref: string) => ref.replace(/^vault:/, '');
const KEY_ID = 'key-id';

export class Vault implements SecretSink {
  private key?: Promise<Buffer>;

  constructor(
    private readonly table: WriteOnceTable,
    private readonly loadKey: () => Promise<Buffer>,
    /** Runs once before first use (a file vault's migration). */
    private readonly prepare: () => Promise<void> = async () => undefined,
  ) {}

  static refFor(key: string): string {
    return `vault:${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;
  }

  /** The key, checked once against the key id the vault was first written with. */
  private aes(): Promise<Buffer> {
    this.key ??= (async () => {
      await this.prepare();
      const key = await this.loadKey();
      // An HMAC of a constant names the key without revealing it. Workers sharing a vault with
      // different keys would each mint secrets the others cannot read: refuse at first use.
      const id = createHmac('sha256', key).update('cordon vault key id').digest('hex').slice(0, 16);
      const stored = await this.table.putIfAbsent(KEY_ID, id);
      if (stored !== id) throw new Error(`the vault at ${this.table.where} was written with another key (key id ${stored}; this worker's is ${id}): every worker sharing it needs the same CORDON_VAULT_KEY`);
      return key;
    })();
    this.key.catch(() => (this.key = undefined)); // a fixed key file or a reachable database next time
    return this.key;
  }

  async issue(key: string, owner: Target): Promise<{ secret: string; ref: SecretRef }> {
    const aes = await this.aes();
    const ref = Vault.refFor(key);
    const minted = randomBytes(24).toString('base64url');
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', aes, iv);
    c.setAAD(Buffer.from(ref)); // binds each ciphertext to its reference
    const data = Buffer.concat([c.update(minted, 'utf8'), c.final()]);
    const mine: Entry = { owner, issuedAt: new Date().toISOString(), iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
    // Minting before knowing is cheap and keeps one round trip: the first stored entry wins.
    const stored = Entry.parse(JSON.parse(await this.table.putIfAbsent(recordKey(ref), JSON.stringify(mine))));
    const secret = this.decrypt(aes, ref, stored);
    const fingerprint = createHash('sha256').update(secret).digest('hex').slice(0, 12);
    return { secret, ref: { sink: 'local-vault', ref, fingerprint } };
  }

  private decrypt(aes: Buffer, ref: string, e: Entry): string {
    try {
      const d = createDecipheriv('aes-256-gcm', aes, Buffer.from(e.iv, 'base64'));
      d.setAAD(Buffer.from(ref));
      d.setAuthTag(Buffer.from(e.tag, 'base64'));
      return d.update(Buffer.from(e.data, 'base64')).toString('utf8') + d.final('utf8');
    } catch {
      throw new Error(`secret ${ref} in ${this.table.where} does not decrypt with this key (tampered, or written with another key)`);
    }
  }

  /** Every reference in the vault (for audits and the test suite's secret scan). */
  async refs(): Promise<string[]> {
    return (await this.table.keys()).filter((k) => k !== KEY_ID).map((k) => `vault:${k}`);
  }

  async read(ref: string): Promise<{ secret: string; owner: Target; issuedAt: string }> {
    const aes = await this.aes();
    if (!/^vault:[0-9a-f]{24}$/.test(ref)) throw new Error(`"${ref}" is not a vault reference (vault:<24 hex digits>)`);
    const raw = await this.table.get(recordKey(ref));
    if (raw === undefined) throw new Error(`no secret ${ref} in the vault at ${this.table.where}`);
    const e = Entry.parse(JSON.parse(raw));
    return { secret: this.decrypt(aes, ref, e), owner: e.owner as Target, issuedAt: e.issuedAt };
  }
}

/**
 * The vault in files beside the worker's data: one file per secret under `<dir>/secrets`, the key
 * from CORDON_VAULT_KEY, a key file, or `<dir>/vault.key` (generated, mode 0600).
 */
export class LocalVault extends Vault {
  constructor(dir: string, keyBase64?: string, keyFile?: string) {
    const root = resolve(dir);
    const table = new FileTable(join(root, 'secrets'));
    super(
      table,
      async () => (keyBase64 ? parseVaultKey(keyBase64, 'CORDON_VAULT_KEY') : loadKeyFile(keyFile ?? join(root, 'vault.key'), !keyFile)),
      () => migrateVaultJson(root, table),
    );
  }
}

/** Earlier versions kept every entry in `vault.json`: each moves to its own record, once. */
async function migrateVaultJson(dir: string, table: WriteOnceTable): Promise<void> {
  const file = join(dir, 'vault.json');
  let old: Record<string, Entry>;
  try {
    old = z.record(z.string(), Entry).parse(JSON.parse(await readFile(file, 'utf8')));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const [ref, e] of Object.entries(old)) await table.putIfAbsent(recordKey(ref), JSON.stringify(e));
  await rename(file, `${file}.migrated`).catch(() => undefined); // another process may have moved it
}
