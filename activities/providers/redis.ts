// Redis ACL users as service credentials. Grants are the user's own ACL rules, one per entry,
// in the order Redis prints them: command rules (`+@read`, `-flushall`, `+client|list`), key
// patterns (`~app:*`, `%R~cache:*`) and channel patterns (`&events:*`). Narrowing rules applies to
// live connections at once; `off` and a new password do not, so those steps also kill clients.
import { createHash } from 'node:crypto';
import Redis from 'ioredis';
import type { ActionResult, Dependent, EvidenceKind, IdentitySnapshot, Receipt, Scope, SuppressionAction } from '../../workflows/schemas';
import { dependentsExcept, narrow, notApplicable, outcome, receiptBoolean, refuse, sameList, sessionAsDependent, validGrants } from './common';
import { IdentityNotFoundError, InvalidInputError, NotSupportedError, type EvidenceArtifact, type IdentityProvider } from './provider';

interface AclUser {
  flags: string[];
  passwords: string[];
  rules: string[];
  selectors: unknown[];
}

type ClientInfo = Record<string, string>;

const RULE = /^([+-][@a-z0-9|_-]+|%?[RW]*~\S+|&\S+)$/i;
const RULES = 'commands +/-, keys ~ or %R~, channels &';

/**
 * Marks a login block Cordon put up: a password hash added beside `off`. Nobody knows a password
 * that hashes to it (choosing a SHA-256 output is not finding its input), so it never lets anyone
 * in, even if someone turns the user on by hand. It is what lets a retried suppression, or a lift
 * without a receipt, tell Cordon's block from a user that was off on purpose. `resetpass` (rotation)
 * and lift remove it.
 */
const BLOCK_MARKER = `${'0'.repeat(48)}c0d0b10cc0d0b10c`;

/** The client's address without its port (a reconnect comes from another port). */
const host = (addr: string | undefined) => (addr ? addr.slice(0, Math.max(0, addr.lastIndexOf(':'))).replace(/^\[|\]$/g, '') || addr : undefined);
const asDependent = (c: ClientInfo) => sessionAsDependent(c.name, host(c.addr), new Date(Date.now() - Number(c.age ?? 0) * 1000));

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

  /** One connection attempt shared by every caller: concurrent first calls all wait for it (none fails on a half-open stream). */
  private connecting?: Promise<void>;

  private async ready(): Promise<void> {
    if (this.admin.status === 'ready') return;
    this.connecting ??= (async () => {
      if (this.admin.status === 'wait' || this.admin.status === 'end') await this.admin.connect();
      else if (this.admin.status !== 'ready') {
        // connecting or reconnecting: wait for the outcome, bounded like a command
        await new Promise<void>((ok, fail) => {
          const timer = setTimeout(() => done(new Error(`redis: admin connection not ready (${this.admin.status})`)), 5000);
          const done = (err?: Error) => {
            clearTimeout(timer);
            this.admin.off('ready', onReady).off('end', onEnd);
            if (err) fail(err);
            else ok();
          };
          const onReady = () => done();
          const onEnd = () => done(new Error('redis: admin connection closed'));
          this.admin.once('ready', onReady).once('end', onEnd);
        });
      }
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async call(...args: (string | number)[]): Promise<unknown> {
    await this.ready();
    return this.admin.call(String(args[0]), ...args.slice(1).map(String));
  }

  async warm(): Promise<void> {
    await this.call('PING');
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

  /**
   * Kills the user's connections (or the one `clientId`) one by one, so it can say which it ended;
   * then by user, for any that the list missed (none can log in once the user is off).
   */
  private async killListed(name: string, clientId?: string): Promise<{ ended: Dependent[]; unlisted: number }> {
    const ended: Dependent[] = [];
    for (const c of await this.clients(name)) {
      if (clientId !== undefined && c.id !== clientId) continue;
      if ((await this.kill(name, c.id)) > 0) ended.push(asDependent(c));
    }
    return { ended, unlisted: clientId === undefined ? await this.kill(name) : 0 };
  }

  /** Replaces all of the user's command, key and channel rules with `rules`. */
  private async setRules(name: string, rules: string[]): Promise<void> {
    validGrants(this.name, rules, (r) => RULE.test(r), RULES);
    await this.call('ACL', 'SETUSER', name, 'resetkeys', 'resetchannels', '-@all', ...rules);
  }

  /**
   * Whether lifting the login block turns the user on: the receipt says if it was on before the
   * block; without one (a containment older than receipts), Cordon's marker says it put the block
   * up; with neither there is no block of Cordon's to lift.
   */
  private liftsTo(u: AclUser, receipt: Receipt | undefined): boolean {
    return (receiptBoolean(receipt, 'onBefore') ?? u.passwords.includes(BLOCK_MARKER)) && !u.flags.includes('on');
  }

  async inspect(identityId: string): Promise<IdentitySnapshot> {
    const u = await this.user(identityId);
    if (!u) return { exists: false, enabled: false, grants: [], sessions: 0 };
    return { exists: true, enabled: u.flags.includes('on'), grants: u.rules, sessions: (await this.clients(identityId)).length };
  }

  async suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult & { ended?: Dependent[] }> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'an ACL user has no tokens or API tiers; its connections are its access');
    if (scope?.sessionId !== undefined && !/^[1-9]\d*$/.test(scope.sessionId)) throw new InvalidInputError(`redis: scope.sessionId is a client id (CLIENT LIST's id=), not "${scope.sessionId}"`);
    const u = await this.mutable(identityId);
    // Block logins first (`off`: the leaked password no longer authenticates), then kill, so the
    // attacker cannot reconnect in between. A user already off stays off; the receipt says which.
    const marked = u.passwords.includes(BLOCK_MARKER);
    const onBefore = marked || u.flags.includes('on');
    const block = u.flags.includes('on');
    // The marker clears `nopass`, so a password-less user is blocked without it (a retry then reads it as off).
    if (block) await this.call('ACL', 'SETUSER', identityId, 'off', ...(u.flags.includes('nopass') ? [] : [`#${BLOCK_MARKER}`]));
    const { ended, unlisted } = await this.killListed(identityId, scope?.sessionId);
    const killed = ended.length + unlisted;
    const r = outcome('revoke-sessions', [block && 'logins blocked (user off)', killed > 0 && `killed ${killed} client connection(s)`], { onBefore });
    return ended.length ? { ...r, ended } : r;
  }

  async liftSuppression(identityId: string, action: SuppressionAction, receipt?: Receipt): Promise<ActionResult> {
    if (action !== 'revoke-sessions') return notApplicable(this.name, action, 'nothing else was blocked');
    const u = await this.mutable(identityId);
    const on = this.liftsTo(u, receipt);
    const marked = u.passwords.includes(BLOCK_MARKER);
    if (on || marked) await this.call('ACL', 'SETUSER', identityId, ...(on ? ['on'] : []), ...(marked ? [`!${BLOCK_MARKER}`] : []));
    return outcome('lift:revoke-sessions', [on && 'logins allowed again (user on); killed connections stay killed', !on && marked && 'login block marker removed']);
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
      // Password hashes are left out; only how many passwords the user has, and whether Cordon blocks its logins.
      'config-snapshot': async () => ({
        flags: u.flags,
        passwordCount: u.passwords.filter((p) => p !== BLOCK_MARKER).length,
        loginBlockedByCordon: u.passwords.includes(BLOCK_MARKER),
        rules: u.rules,
        selectors: u.selectors,
      }),
    };
    return { contentType: 'application/json', body: JSON.stringify({ identityId, capturedAt: new Date().toISOString(), [kind]: await body[kind]() }) };
  }

  async restrict(identityId: string, keep: string[]): Promise<ActionResult> {
    validGrants(this.name, keep, (r) => RULE.test(r), RULES);
    const u = await this.mutable(identityId);
    if (u.selectors.length) throw new NotSupportedError(`redis: user "${identityId}" has ACL selectors, which Cordon does not narrow yet`);
    // A `-command` rule only ever takes access away, so it always stays.
    const { kept, removed } = narrow(u.rules, keep, (rule) => rule.startsWith('-'));
    if (removed.length) await this.setRules(identityId, kept);
    return outcome('restrict', [removed.length > 0 && `removed rules ${removed.join(' ')} (applies to live connections at once)`]);
  }

  async restore(identityId: string, grants: string[]): Promise<ActionResult> {
    validGrants(this.name, grants, (r) => RULE.test(r), RULES);
    const u = await this.mutable(identityId);
    if (sameList(u.rules, grants)) return outcome('restore', []);
    await this.setRules(identityId, grants);
    return outcome('restore', [`rules restored to ${grants.join(' ')}`]);
  }

  async setSecret(identityId: string, secret: string, loginBlock?: Receipt): Promise<ActionResult> {
    const u = await this.mutable(identityId);
    const hash = createHash('sha256').update(secret).digest('hex');
    const real = u.passwords.filter((p) => p !== BLOCK_MARKER);
    const inPlace = real.length === 1 && real[0] === hash;
    // The leaked password is dead once this lands, so the login block suppression put up has done
    // its job: lifted in the same command, so the user is never on with the old password.
    const on = this.liftsTo(u, loginBlock);
    const unmark = inPlace && real.length < u.passwords.length; // resetpass removes the marker otherwise
    // Sent as its SHA-256 (`#hash`): the plain secret never travels to Redis, nor into its logs.
    const args = [...(inPlace ? [] : ['resetpass', `#${hash}`]), ...(unmark ? [`!${BLOCK_MARKER}`] : []), ...(on ? ['on'] : [])];
    if (args.length) await this.call('ACL', 'SETUSER', identityId, ...args);
    // Always kill: a retry after a crash must still cut the connections the old password opened.
    const killed = await this.kill(identityId);
    return outcome('rotate', [!inPlace && 'password replaced; old passwords removed', on && 'login block lifted (user on)', killed > 0 && `killed ${killed} client connection(s)`]);
  }

  async setEnabled(identityId: string, enabled: boolean): Promise<ActionResult> {
    const u = await this.mutable(identityId);
    const flip = u.flags.includes('on') !== enabled;
    if (flip) await this.call('ACL', 'SETUSER', identityId, enabled ? 'on' : 'off');
    const killed = enabled ? 0 : await this.kill(identityId);
    return outcome(enabled ? 'enable' : 'disable', [flip && `user turned ${enabled ? 'on' : 'off'}`, killed > 0 && `killed ${killed} client connection(s)`]);
  }

  async dependents(identityId: string, exclude?: Dependent[]): Promise<Dependent[]> {
    if (!(await this.user(identityId))) throw new IdentityNotFoundError(this.name, identityId);
    return dependentsExcept((await this.clients(identityId)).map(asDependent), exclude);
  }

  async close(): Promise<void> {
    this.admin.disconnect();
  }
}
