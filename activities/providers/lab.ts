// The lab directory: an embedded, file-backed identity system that needs nothing installed.
// It behaves like the real ones where it matters (sessions survive a disable unless ended,
// grants are restorable, every mutation is journalled) so the quick start and tests mean something.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { Context } from '@temporalio/activity';
import { rmSync } from 'node:fs';
import { link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { IdentityKind, type ActionResult, type Dependent, type EvidenceKind, type IdentitySnapshot, type Receipt, type Scope, type SuppressionAction } from '../../workflows/schemas';
import { dependentsExcept, sessionAsDependent } from './common';
import { IdentityNotFoundError, NotSupportedError, type EvidenceArtifact, type IdentityProvider } from './provider';

const Session = z.object({ id: z.string(), device: z.string(), address: z.string(), startedAt: z.string() });
const Token = z.object({ id: z.string(), type: z.enum(['access', 'refresh', 'offline']), issuedAt: z.string() });

export const LabIdentity = z.object({
  kind: IdentityKind,
  enabled: z.boolean().default(true),
  grants: z.array(z.string()).default([]),
  sessions: z.array(Session).default([]),
  tokens: z.array(Token).default([]),
  /** Only a hash of the credential is kept, as a real directory would. */
  credential: z.object({ id: z.string(), sha256: z.string(), rotatedAt: z.string() }).optional(),
  stepUpRequired: z.boolean().default(false),
  highRiskApisBlocked: z.boolean().default(false),
  dependents: z.array(z.object({ name: z.string(), address: z.string().optional(), lastSeen: z.string().optional() })).default([]),
  authEvents: z.array(z.object({ at: z.string(), type: z.string(), address: z.string() })).default([]),
  /** Lab-only fault injection, for drills and tests. */
  faults: z
    .object({
      evidenceDelayMs: z.number().int().min(0).optional(),
      evidenceFails: z.boolean().optional(),
      /** Holds a rotation after the secret is minted and before the directory takes it (a worker killed mid-rotation). */
      rotateDelayMs: z.number().int().min(0).optional(),
    })
    .default({}),
});
export type LabIdentity = z.infer<typeof LabIdentity>;
export type LabIdentityInput = z.input<typeof LabIdentity>;

export const Mutation = z.object({ seq: z.number().int(), at: z.string(), identity: z.string(), op: z.string(), detail: z.string() });
export type Mutation = z.infer<typeof Mutation>;

/**
 * Identities by name, in an object with no prototype: a name comes from a signal, and names such
 * as `__proto__` or `constructor` must be plain keys, never a way into Object.prototype. (zod's
 * record would assign `__proto__` through the setter and lose it.)
 */
const Identities = z
  .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'identities is an object keyed by identity id')
  .transform((raw, ctx) => {
    const out: Record<string, LabIdentity> = Object.create(null);
    for (const [id, value] of Object.entries(raw)) {
      const parsed = LabIdentity.safeParse(value);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: 'custom', path: [id, ...issue.path] });
        return z.NEVER;
      }
      out[id] = parsed.data;
    }
    return out;
  });

/** The identity stored under exactly this name, never something inherited. */
const own = (identities: Record<string, LabIdentity>, id: string): LabIdentity | undefined => (Object.hasOwn(identities, id) ? identities[id] : undefined);

/**
 * Every mutating call, including the ones that changed nothing, with the activity attempt that
 * made it: a repeated no-op is invisible in `mutations`, and the drill audits these instead.
 */
export const Call = z.object({
  seq: z.number().int(),
  at: z.string(),
  identity: z.string(),
  op: z.string(),
  changed: z.boolean(),
  workflowId: z.string().optional(),
  runId: z.string().optional(),
  activityId: z.string().optional(),
  /** The activity's type: v6's first step (loadPolicyAndSuppress) makes suppressions' first attempts. */
  activityType: z.string().optional(),
  attempt: z.number().int().optional(),
  /** A local activity: re-run with its attempt count from 1 when a worker died before its workflow task completed. */
  local: z.boolean().optional(),
  /** The worker process that made the call (`<pid>@<host>`, as Temporal names workers). */
  worker: z.string().optional(),
});
export type Call = z.infer<typeof Call>;

/** The activity attempt making the current call, when there is one (tests call providers directly). */
function caller(): Pick<Call, 'workflowId' | 'runId' | 'activityId' | 'activityType' | 'attempt' | 'local' | 'worker'> {
  try {
    const i = Context.current().info;
    return { workflowId: i.workflowExecution?.workflowId, runId: i.workflowExecution?.runId, activityId: i.activityId, activityType: i.activityType, attempt: i.attempt, local: i.isLocal, worker: `${process.pid}@${hostname()}` };
  } catch {
    return {};
  }
}

export const LabState = z.object({
  identities: Identities.default(() => Object.create(null) as Record<string, LabIdentity>),
  mutations: z.array(Mutation).default([]),
  calls: z.array(Call).default([]),
  /** Calls a fault is holding right now (rotateDelayMs): which worker holds which step, for a test that kills it. */
  held: z.array(z.object({ identity: z.string(), op: z.string(), worker: z.string(), at: z.string() })).default([]),
  /** Lab-only: the directory answers nothing until then (a provider outage). */
  unavailableUntil: z.string().optional(),
});
export type LabState = z.infer<typeof LabState>;

/** An update's result, or its error. */
type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };
/** An update waiting for the next write of its file, and how to settle its caller. */
interface Queued {
  fn: (s: LabState) => unknown;
  done: (r: Settled) => void;
}
/** Updates of each file waiting for the write in progress to finish: they share the next one. */
const queued = new Map<string, Queued[]>();
/** The write in progress on each file, if any. */
const writing = new Map<string, Promise<void>>();
/**
 * What this process last wrote to each lab file, parsed and as bytes. Parsing the whole file on
 * every update cost more CPU than the update once its journal had grown; the parsed copy is used
 * only while the file still holds exactly those bytes (another process, or a hand, may have
 * written it since), and it is dropped while `fn` runs, which may throw halfway through.
 */
const written = new Map<string, { state: LabState; bytes: Buffer }>();
const parseLab = (bytes: Buffer | undefined) => LabState.parse(JSON.parse(bytes?.toString('utf8') ?? '{}'));

const isCode = (err: unknown, code: string) => (err as NodeJS.ErrnoException).code === code;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !isCode(err, 'ESRCH'); // EPERM: it exists, under another user
  }
};

/**
 * A lock file beside the lab file, so that several worker processes on one host (the cluster
 * drill's two workers) can share the lab: each writer links its own file, holding its pid, to
 * the lock's name, which fails while another holds it. A holder killed with SIGKILL leaves its
 * lock behind; a waiter that finds the holder's process gone removes it, under a second lock so
 * that two waiters never both break it (one could otherwise remove the other's fresh lock).
 */
async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  const breaking = `${lock}.breaking`;
  let mine = await ownLockFile(lock);
  let remade = false;
  const take = async (name: string): Promise<boolean> => {
    try {
      await link(mine, name);
      return true;
    } catch (err) {
      if (isCode(err, 'EEXIST')) return false;
      if (!isCode(err, 'ENOENT') || remade) throw err;
      // Removed under us (with its folder, or by hand): made again, once.
      remade = true;
      owned.delete(lock);
      mine = await ownLockFile(lock);
      return take(name);
    }
  };
  for (let wait = 1; !(await take(lock)); wait = Math.min(wait * 2, 20)) {
    const holder = Number(await readFile(lock, 'utf8').catch(() => ''));
    // Our own pid on a lock we do not hold (this process writes one update at a time): a dead
    // process's lock whose pid came back to us.
    if (holder && (holder === process.pid || !alive(holder))) {
      if (await take(breaking)) {
        // While the dead holder's lock exists nobody can take a new one, and only we may break it.
        if (Number(await readFile(lock, 'utf8').catch(() => '')) === holder) {
          await unlink(lock).catch(() => undefined);
          if (holder !== process.pid) await unlink(`${lock}.${holder}`).catch(() => undefined); // ours is a new file
        }
        await unlink(breaking).catch(() => undefined);
        continue;
      }
      // A breaker killed in its few microseconds would block the rest forever: its mark expires.
      // Aged by ctime, which linking the breaker's pid file to the mark sets (its mtime is as old as the file).
      const mark = await stat(breaking).catch(() => undefined);
      if (mark && Date.now() - mark.ctimeMs > 5000) await unlink(breaking).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, wait + Math.random() * wait));
  }
  try {
    return await fn();
  } finally {
    await unlink(lock);
  }
}

/**
 * This process's file holding its pid, linked to the lock's name to take it: one writer per
 * file per process (the queue below). Made once per lab file and removed at exit, not at every
 * update (two syscalls fewer on each; a lab write was mostly syscalls).
 */
const owned = new Map<string, Promise<string>>();
let removeAtExit = false;
function ownLockFile(lock: string): Promise<string> {
  let made = owned.get(lock);
  if (!made) {
    const mine = `${lock}.${process.pid}`;
    // Unlinked first: a dead process with our pid may have left it linked to a stale lock.
    made = mkdir(dirname(lock), { recursive: true })
      .then(() => unlink(mine).catch(() => undefined))
      .then(() => writeFile(mine, String(process.pid)))
      .then(() => mine);
    made.catch(() => owned.delete(lock));
    owned.set(lock, made);
    if (!removeAtExit) process.once('exit', () => owned.forEach((_, l) => rmSync(`${l}.${process.pid}`, { force: true })));
    removeAtExit = true;
  }
  return made;
}

/**
 * Applies a batch's updates in order. An update that throws may have changed the state halfway,
 * so the batch starts again from the file without it (`fresh`): the updates before it run again
 * on a clean copy, and only their second results count. Throwing is rare (an unknown identity,
 * an outage the lab simulates), and each update is a function of the state alone.
 */
function applyAll(batch: Queued[], first: () => LabState, fresh: () => LabState): { state: LabState; results: Settled[] } {
  const failed = new Map<number, Settled>();
  for (let from = first; ; from = fresh) {
    const state = from();
    const results: Settled[] = [];
    let threw = false;
    for (const [i, q] of batch.entries()) {
      const known = failed.get(i);
      if (known) {
        results.push(known);
        continue;
      }
      try {
        results.push({ ok: true, value: q.fn(state) });
      } catch (error) {
        failed.set(i, { ok: false, error });
        threw = true;
        break;
      }
    }
    if (!threw) return { state, results };
  }
}

/** Reads and writes the lab file; writes in this process go through one queue per file, and processes take turns by a lock file. */
export class LabDirectory {
  readonly file: string;
  constructor(file: string) {
    this.file = resolve(file);
  }

  async read(): Promise<LabState> {
    return parseLab(await this.bytes());
  }

  /**
   * The current state for reading only: the parsed copy this process last wrote while the file
   * still holds exactly those bytes, else a fresh parse. Shared with later updates, so a caller
   * takes what it needs before it next awaits. (Evidence and lookups parsed the whole file each.)
   */
  async snapshot(): Promise<LabState> {
    await writing.get(this.file); // after this process's write in flight, which drops the copy while it runs
    const current = await this.bytes();
    const last = written.get(this.file);
    return last && current?.equals(last.bytes) ? last.state : parseLab(current);
  }

  private bytes(): Promise<Buffer | undefined> {
    return readFile(this.file).catch((err) => (isCode(err, 'ENOENT') ? undefined : Promise.reject(err)));
  }

  /**
   * Applies `fn` to the state and saves it atomically; returns what `fn` returns once the file
   * holds the result. Group commit: updates that arrive while a write is in progress are applied
   * in order and saved together by the next one, so a burst rewrites the file once per batch
   * instead of once per call (each rewrite serialises the whole state, journals included).
   */
  update<T>(fn: (s: LabState) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const batch = queued.get(this.file) ?? [];
      batch.push({ fn, done: (r) => (r.ok ? resolve(r.value as T) : reject(r.error)) });
      queued.set(this.file, batch);
      if (!writing.has(this.file)) void this.drain();
    });
  }

  /** Writes batch after batch until none waits. Checking and leaving happen in one turn, so no update is stranded. */
  private async drain(): Promise<void> {
    for (let batch = queued.get(this.file); batch?.length; batch = queued.get(this.file)) {
      queued.delete(this.file);
      const write = this.write(batch);
      writing.set(this.file, write);
      await write;
    }
    writing.delete(this.file);
  }

  /** One batch under the file lock: every update settles, each with its own result or error. */
  private async write(batch: Queued[]): Promise<void> {
    try {
      const results = await withFileLock(this.file, async () => {
        const last = written.get(this.file);
        const current = await this.bytes();
        written.delete(this.file);
        const base = () => (last && current?.equals(last.bytes) ? last.state : parseLab(current));
        const { state, results } = applyAll(batch, base, () => parseLab(current));
        if (results.some((r) => r.ok)) {
          const bytes = Buffer.from(JSON.stringify(state, null, 1));
          const tmp = `${this.file}.${process.pid}.tmp`;
          await writeFile(tmp, bytes);
          await rename(tmp, this.file); // a crash leaves the old file or the new one, never half of one
          written.set(this.file, { state, bytes });
        } // else every update threw: nothing to save, and the copy may hold half of one (the next parses the file)
        return results;
      });
      batch.forEach((q, i) => q.done(results[i]!));
    } catch (error) {
      for (const q of batch) q.done({ ok: false, error }); // nothing was saved
    }
  }

  /** Adds or replaces identities (the demo and tests seed with this). */
  seed(identities: Record<string, LabIdentityInput>): Promise<void> {
    return this.update((s) => {
      for (const [id, raw] of Object.entries(identities)) s.identities[id] = LabIdentity.parse(raw);
    });
  }

  static hashSecret(secret: string): string {
    return createHash('sha256').update(secret).digest('hex');
  }
}

export class LabProvider implements IdentityProvider {
  readonly name = 'lab';
  readonly dir: LabDirectory;
  constructor(file: string) {
    this.dir = new LabDirectory(file);
  }

  private checkAvailable(s: LabState) {
    if (s.unavailableUntil && Date.parse(s.unavailableUntil) > Date.now()) throw new Error(`lab directory unavailable until ${s.unavailableUntil}`);
  }

  /** Runs a mutation on one identity, journalling it only when something changed (every call goes to `calls`). */
  private mutate(identityId: string, op: string, fn: (i: LabIdentity) => string | undefined): Promise<ActionResult> {
    const by = caller();
    return this.dir.update((s) => {
      this.checkAvailable(s);
      const identity = own(s.identities, identityId);
      if (!identity) throw new IdentityNotFoundError(this.name, identityId);
      const detail = fn(identity);
      s.calls.push({ seq: s.calls.length + 1, at: new Date().toISOString(), identity: identityId, op, changed: detail !== undefined, ...by });
      if (detail === undefined) return { changed: false, detail: `${op}: already in place` };
      s.mutations.push({ seq: s.mutations.length + 1, at: new Date().toISOString(), identity: identityId, op, detail });
      return { changed: true, detail };
    });
  }

  /** The identity as it is now, a copy of its own (the snapshot is shared). */
  private async get(identityId: string): Promise<LabIdentity> {
    const s = await this.dir.snapshot();
    this.checkAvailable(s);
    const identity = own(s.identities, identityId);
    if (!identity) throw new IdentityNotFoundError(this.name, identityId);
    return structuredClone(identity);
  }

  async inspect(identityId: string): Promise<IdentitySnapshot> {
    const s = await this.dir.snapshot();
    this.checkAvailable(s);
    const i = own(s.identities, identityId);
    if (!i) return { exists: false, enabled: false, grants: [], sessions: 0 };
    return { exists: true, enabled: i.enabled, grants: [...i.grants], sessions: i.sessions.length };
  }

  async suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult & { ended?: Dependent[] }> {
    let ended: Dependent[] = [];
    const result = await this.mutate(identityId, action, (i) => {
      switch (action) {
        case 'revoke-sessions': {
          // A scoped signal names one session; without scope every session goes.
          const gone = i.sessions.filter((x) => !scope?.sessionId || x.id === scope.sessionId);
          if (!gone.length) return undefined;
          i.sessions = i.sessions.filter((x) => !gone.includes(x));
          ended = gone.map((x) => sessionAsDependent(x.device, x.address, x.startedAt));
          return `ended ${gone.length} session(s): ${gone.map((x) => x.id).join(', ')}`;
        }
        case 'revoke-tokens': {
          const revoked = i.tokens.filter((t) => t.type !== 'access' || !scope?.tokenId || t.id === scope.tokenId);
          if (!revoked.length) return undefined;
          i.tokens = i.tokens.filter((t) => !revoked.includes(t));
          return `revoked ${revoked.length} token(s): ${revoked.map((t) => t.id).join(', ')}`;
        }
        case 'block-high-risk-apis':
          if (i.highRiskApisBlocked) return undefined;
          i.highRiskApisBlocked = true;
          return 'high-risk APIs blocked';
        case 'force-step-up':
          if (i.stepUpRequired) return undefined;
          i.stepUpRequired = true;
          return 'step-up authentication required at next use';
      }
    });
    return ended.length ? { ...result, ended } : result;
  }

  // The lab blocks no logins at suppression, so there is no receipt to read.
  liftSuppression(identityId: string, action: SuppressionAction, _receipt?: Receipt): Promise<ActionResult> {
    // Ended sessions and revoked tokens stay ended: the owner signs in again.
    if (action === 'revoke-sessions' || action === 'revoke-tokens') return Promise.resolve({ changed: false, detail: `${action}: nothing to lift; revocations stay` });
    return this.mutate(identityId, `lift:${action}`, (i) => {
      if (action === 'block-high-risk-apis') {
        if (!i.highRiskApisBlocked) return undefined;
        i.highRiskApisBlocked = false;
        return 'high-risk APIs unblocked';
      }
      if (!i.stepUpRequired) return undefined;
      i.stepUpRequired = false;
      return 'step-up requirement lifted';
    });
  }

  async evidence(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact> {
    const i = await this.get(identityId);
    if (i.faults.evidenceDelayMs) await new Promise((r) => setTimeout(r, i.faults.evidenceDelayMs));
    if (i.faults.evidenceFails) throw new NotSupportedError(`lab fault: evidence capture for ${identityId} fails`);
    const body: Record<EvidenceKind, unknown> = {
      'auth-events': i.authEvents,
      sessions: i.sessions,
      'token-metadata': i.tokens,
      grants: i.grants,
      // Configuration without secret material: the credential appears by id and date only.
      'config-snapshot': { kind: i.kind, enabled: i.enabled, credential: i.credential && { id: i.credential.id, rotatedAt: i.credential.rotatedAt }, stepUpRequired: i.stepUpRequired, highRiskApisBlocked: i.highRiskApisBlocked },
    };
    return { contentType: 'application/json', body: JSON.stringify({ identityId, capturedAt: new Date().toISOString(), [kind]: body[kind] }) };
  }

  restrict(identityId: string, keep: string[]): Promise<ActionResult> {
    return this.mutate(identityId, 'restrict', (i) => {
      const removed = i.grants.filter((g) => !keep.includes(g));
      const sessions = i.sessions.length;
      if (!removed.length && !sessions) return undefined;
      i.grants = i.grants.filter((g) => keep.includes(g));
      i.sessions = [];
      return `removed grants [${removed.join(', ')}], ended ${sessions} session(s)`;
    });
  }

  restore(identityId: string, grants: string[]): Promise<ActionResult> {
    return this.mutate(identityId, 'restore', (i) => {
      if (i.grants.length === grants.length && grants.every((g) => i.grants.includes(g))) return undefined;
      i.grants = [...grants];
      return `grants restored to [${grants.join(', ')}]`;
    });
  }

  async setSecret(identityId: string, secret: string, _loginBlock?: Receipt): Promise<ActionResult> {
    const { faults } = await this.get(identityId);
    if (faults.rotateDelayMs) {
      await this.dir.update((s) => void s.held.push({ identity: identityId, op: 'rotate', worker: `${process.pid}@${hostname()}`, at: new Date().toISOString() }));
      await new Promise((r) => setTimeout(r, faults.rotateDelayMs));
    }
    const sha256 = LabDirectory.hashSecret(secret);
    return this.mutate(identityId, 'rotate', (i) => {
      if (i.credential?.sha256 === sha256) return undefined;
      const id = `cred-${sha256.slice(0, 8)}`;
      i.credential = { id, sha256, rotatedAt: new Date().toISOString() };
      const ended = i.sessions.length;
      i.sessions = [];
      return `credential replaced by ${id}; ended ${ended} session(s)`;
    });
  }

  setEnabled(identityId: string, enabled: boolean): Promise<ActionResult> {
    return this.mutate(identityId, enabled ? 'enable' : 'disable', (i) => {
      if (i.enabled === enabled && (enabled || !i.sessions.length)) return undefined;
      const ended = enabled ? 0 : i.sessions.length;
      i.enabled = enabled;
      if (!enabled) i.sessions = [];
      return enabled ? 'identity enabled' : `identity disabled; ended ${ended} session(s)`;
    });
  }

  async dependents(identityId: string, exclude?: Dependent[]): Promise<Dependent[]> {
    return dependentsExcept((await this.get(identityId)).dependents, exclude);
  }

  async close(): Promise<void> {}
}
