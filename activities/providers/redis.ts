// Redis ACL users as service credentials. Grants are the user's own ACL rules, one per entry,
// in the order Redis prints them: command rules (`+@read`, `-flushall`, `+client|list`), key
// patterns (`~app:*`, `%R~cache:*`) and channel patterns (`&events:*`). Narrowing rules applies to
// live connections at once; `off` and a new password do not, so those steps also kill clients.
import { createHash } from 'node:crypto';
import Redis from 'ioredis';
import type { ActionResult, Dependent, EvidenceKind, IdentitySnapshot, Scope, SuppressionAction } from '../../workflows/schemas';
import { narrow, notApplicable, outcome, refuse, sameList } from './common';
import { IdentityNotFoundError, NotSupportedError, type EvidenceArtifact, type IdentityProvider } from './provider';

interface AclUser {
  flags: string[];
  passwords: string[];
  rules: string[];
  selectors: unknown[];
}

type ClientInfo = Record<string, string>;

const RULE = /^([+-][@a-z0-9|_-]+|%?[RW]*~\S+|&\S+)$/i;

export class RedisProvider implements IdentityProvider {
  readonly name = 'redis';
  private readonly admin: Redis;
  private readonly adminUser: string;

  constructor(url: string) {
    // Fail fast while the server is down (the activity retries), rather than queueing commands.
    this.admin = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, enableReadyCheck: false, connectTimeout: 5000, commandTimeout: 5000 });
    this.admin.on('error', () => undefined); // reconnects on its own; each command reports its own failure
    this.adminUser = decodeURIComponent(new URL(url).username || 'default');
  }

  private async call(...args: (string | number)[]): Promise<unknown> {
    if (this.admin.status === 'wait' || this.admin.status === 'end') await this.admin.connect();
    return this.admin.call(String(args[0]), ...args.slice(1).map(String));
  }

  private async user(name: string): Promise<AclUser | undefined> {
    const raw = (await this.call('ACL', 'GETUSER', name)) as unknown[] | null;
    if (!raw) return undefined;
    const f = Object.fromEntries(Array.from({ length: raw.length / 2 }, (_, i) => [String(raw[2 * i]), raw[2 * i + 1]]));
    const words = (v: unknown) => (typeof v === 'string' ? v.split(' ').filter(Boolean) : []);
    return {
      flags: f.flags as string[],
      passwords: f.passwords as string[],
      rules: [...words(f.commands), ...words(f.keys), ...words(f.channels)],
      selectors: (f.selectors as unknown[]) ?? [],
    };
  }

  /** The user, or an error saying why Cordon will not or cannot act on it. */
  private async mutable(name: string): Promise<AclUser> {
    const u = await this.user(name);
    if (!u) throw new IdentityNotFoundError(this.name, name);
    refuse(this.name, name, name === 'default' ? 'it is the default user, which every unauthenticated client is' : name === this.adminUser ? "it is Cordon's own admin user" : undefined);
    return u;
  }

  private async clients(name: string): Promise<ClientInfo[]> {
    const text = String(await this.call('CLIENT', 'LIST'));
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])))
      .filter((c) => c.user === name);
  }

  private async kill(name: string, clientId?: string): Promise<number> {
    if (clientId === undefined) return Number(await this.call('CLIENT', 'KILL', 'USER', name));
    // A scoped kill still checks the connection belongs to this user.
    return Number(await this.call('CLIENT', 'KILL', 'ID', clientId, 'USER', name));
  }

  /** Replaces all of the user's command, key and channel rules with `rules`. */
  private async setRules(name: string, rules: string[]): Promise<void> {
    const bad = rules.find((r) => !RULE.test(r));
    if (bad) throw new Error(`redis: "${bad}" is not an ACL rule Cordon sets (commands +/-, keys ~ or %R~, channels &)`);
    await this.call('ACL', 'SETUSER', name, 'resetkeys', 'resetchannels', '-@all', ...rules);
  }

  async inspect(identityId: string): Promise<IdentitySnapshot> {
    const u = await this.user(identityId);
    if (!u) return { exists: false, enabled: false, grants: [], sessions: 0 };
    return { exists: true, enabled: u.flags.includes('on'), grants: u.rules, sessions: (await this.clients(identityId)).length };
  }

  async suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'an ACL user has no tokens or API tiers; its connections are its access');
    await this.mutable(identityId);
    const killed = await this.kill(identityId, scope?.sessionId);
    return outcome('revoke-sessions', [killed > 0 && `killed ${killed} client connection(s)`]);
  }

  async liftSuppression(identityId: string, action: SuppressionAction): Promise<ActionResult> {
    return notApplicable(this.name, action, 'killed connections stay killed; nothing else was blocked');
  }

  async evidence(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact> {
    const u = await this.user(identityId);
    if (!u) throw new IdentityNotFoundError(this.name, identityId);
    const body: Record<EvidenceKind, () => Promise<unknown>> = {
      sessions: () => this.clients(identityId),
      // ACL LOG holds denials and failed logins (no successful ones); keep this user's entries.
      'auth-events': async () => {
        const entries = ((await this.call('ACL', 'LOG')) as unknown[][]).map((e) => Object.fromEntries(Array.from({ length: e.length / 2 }, (_, i) => [String(e[2 * i]), e[2 * i + 1]])));
        return entries.filter((e) => e.username === identityId);
      },
      'token-metadata': async () => ({ note: 'Redis ACL users have no tokens' }),
      grants: async () => ({ rules: u.rules, selectors: u.selectors }),
      // Password hashes are left out; only how many passwords the user has.
      'config-snapshot': async () => ({ flags: u.flags, passwordCount: u.passwords.length, rules: u.rules, selectors: u.selectors }),
    };
    return { contentType: 'application/json', body: JSON.stringify({ identityId, capturedAt: new Date().toISOString(), [kind]: await body[kind]() }) };
  }

  async restrict(identityId: string, keep: string[]): Promise<ActionResult> {
    const u = await this.mutable(identityId);
    if (u.selectors.length) throw new NotSupportedError(`redis: user "${identityId}" has ACL selectors, which Cordon does not narrow yet`);
    // A `-command` rule only ever takes access away, so it always stays.
    const { kept, removed } = narrow(u.rules, keep, (rule) => rule.startsWith('-'));
    if (removed.length) await this.setRules(identityId, kept);
    return outcome('restrict', [removed.length > 0 && `removed rules ${removed.join(' ')} (applies to live connections at once)`]);
  }

  async restore(identityId: string, grants: string[]): Promise<ActionResult> {
    const u = await this.mutable(identityId);
    if (sameList(u.rules, grants)) return outcome('restore', []);
    await this.setRules(identityId, grants);
    return outcome('restore', [`rules restored to ${grants.join(' ')}`]);
  }

  async setSecret(identityId: string, secret: string): Promise<ActionResult> {
    const u = await this.mutable(identityId);
    const hash = createHash('sha256').update(secret).digest('hex');
    const inPlace = u.passwords.length === 1 && u.passwords[0] === hash;
    // Sent as its SHA-256 (`#hash`): the plain secret never travels to Redis, nor into its logs.
    if (!inPlace) await this.call('ACL', 'SETUSER', identityId, 'resetpass', `#${hash}`);
    // Always kill: a retry after a crash must still cut the connections the old password opened.
    const killed = await this.kill(identityId);
    return outcome('rotate', [!inPlace && 'password replaced; old passwords removed', killed > 0 && `killed ${killed} client connection(s)`]);
  }

  async setEnabled(identityId: string, enabled: boolean): Promise<ActionResult> {
    const u = await this.mutable(identityId);
    const flip = u.flags.includes('on') !== enabled;
    if (flip) await this.call('ACL', 'SETUSER', identityId, enabled ? 'on' : 'off');
    const killed = enabled ? 0 : await this.kill(identityId);
    return outcome(enabled ? 'enable' : 'disable', [flip && `user turned ${enabled ? 'on' : 'off'}`, killed > 0 && `killed ${killed} client connection(s)`]);
  }

  async dependents(identityId: string): Promise<Dependent[]> {
    if (!(await this.user(identityId))) throw new IdentityNotFoundError(this.name, identityId);
    return (await this.clients(identityId)).map((c) => ({ name: c.name || 'unnamed client', address: c.addr }));
  }

  async close(): Promise<void> {
    this.admin.disconnect();
  }
}
