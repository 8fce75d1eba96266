// One local stack per data folder. Two dev servers on one SQLite file fail in confusing ways
// (SQLITE_BUSY, "shard status unknown"), so `npm start` takes `<data>/stack.lock` first: a
// record of its pid and, once started, its server's and worker's. A lock whose stack is gone
// (killed with SIGKILL, a crash) is taken over, after stopping a server it left running on the
// same SQLite file.
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

const Held = z.object({ pid: z.number().int(), startedAt: z.string(), serverPid: z.number().int().optional(), dbFile: z.string().optional(), workerPid: z.number().int().optional(), apiPid: z.number().int().optional() });
type Held = z.infer<typeof Held>;

export interface StackLock {
  file: string;
  /** Adds the pids of what the stack started, for a later start to clean up after a crash. */
  record(more: Partial<Held>): void;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process's command line, where the OS shows it (Linux); undefined elsewhere. */
function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** Alive and, where the OS tells, still the program that wrote the lock (pids get reused). */
function still(pid: number, program: (cmd: string) => boolean): boolean {
  if (!alive(pid)) return false;
  const cmd = cmdline(pid);
  return cmd === undefined || program(cmd);
}

function read(file: string): Held | undefined {
  try {
    return Held.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return undefined;
  }
}

/** Writes `held` to `file` whole: to a private temporary file, then renamed or linked in place. */
function writeWhole(file: string, held: Held, exclusive: boolean): boolean {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, JSON.stringify(held), { mode: 0o600 });
  try {
    if (!exclusive) {
      renameSync(tmp, file);
      return true;
    }
    linkSync(tmp, file); // fails if a lock is there: only one start wins
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // renamed away
    }
  }
}

/** Stops what a stack that did not stop cleanly left running: its HTTP API and worker, then its server. */
/** Signals `pid`; one that has exited in the meantime (its parent's guard may stop it) is fine. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function stopLeftovers(held: Held): void {
  const leftovers = [
    held.apiPid && still(held.apiPid, (cmd) => cmd.includes('server/main.ts')) && { pid: held.apiPid, what: 'HTTP API' },
    held.workerPid && still(held.workerPid, (cmd) => cmd.includes('workers/main.ts')) && { pid: held.workerPid, what: 'worker' },
    held.serverPid && held.dbFile && still(held.serverPid, (cmd) => cmd.includes('start-dev') && cmd.includes(held.dbFile!)) && { pid: held.serverPid, what: `Temporal server on ${held.dbFile}` },
  ].filter((x): x is { pid: number; what: string } => !!x);
  for (const { pid, what } of leftovers) {
    console.warn(`cordon: the ${what} (pid ${pid}) of a stack that did not stop cleanly is still running: stopping it`);
    signal(pid, 'SIGTERM');
    const until = Date.now() + 10_000;
    while (alive(pid) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    if (alive(pid)) signal(pid, 'SIGKILL');
  }
}

export function acquireStackLock(dataDir: string): StackLock {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'stack.lock');
  const mine: Held = { pid: process.pid, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (writeWhole(file, mine, true)) {
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        if (read(file)?.pid === process.pid) unlinkSync(file);
      };
      process.once('exit', release);
      return {
        file,
        record(more) {
          Object.assign(mine, more);
          writeWhole(file, mine, false);
        },
        release,
      };
    }
    const held = read(file);
    if (held && still(held.pid, (cmd) => cmd.includes('start.ts'))) {
      throw new Error(`another Cordon stack (pid ${held.pid}) is running on ${dataDir} since ${held.startedAt}: stop it (Ctrl-C in its terminal) or set CORDON_DATA_DIR to another folder`);
    }
    // Its stack is gone (SIGKILL, a crash, a reboot): take the lock over, unless another start
    // did so meanwhile (the lock changed since it was read).
    if (held) stopLeftovers(held);
    try {
      if (JSON.stringify(read(file)) === JSON.stringify(held)) unlinkSync(file);
    } catch {
      // another start removed it first; the next attempt decides
    }
  }
  throw new Error(`cannot take ${file}: other starts keep taking it`);
}
