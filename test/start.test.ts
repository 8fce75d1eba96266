// `npm start` as a user runs it: Ctrl-C at any moment leaves no Temporal server behind (the next
// start then works on the same SQLite file), a second stack on one data folder is refused with a
// clear message, a stack killed with SIGKILL leaves no worker or HTTP API behind, and a server
// that cannot start is reported with its own error.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, startDevServer } from '../scripts/dev-server';
import { resolveTemporalCli } from '../scripts/temporal-cli';
import { eventually } from './fixtures';

const ROOT = resolve(__dirname, '..');

/** Pids of `temporal server start-dev` processes listening on `port` (read from /proc). */
function serversOn(port: number): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const at = argv.indexOf('--port');
    if (argv.includes('start-dev') && at >= 0 && argv[at + 1] === String(port)) pids.push(Number(d));
  }
  return pids;
}

/** Pids of the worker and HTTP API processes of the stack on `dataDir` (read from /proc). */
function stackChildren(dataDir: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (argv.some((a) => /(workers|server)\/main\.ts$/.test(a)) && env.includes(`CORDON_DATA_DIR=${dataDir}`)) pids.push(Number(d));
    } catch {
      continue; // gone meanwhile
    }
  }
  return pids;
}

/** Whether any process of the group is left (npm, sh, tsx, the stack's node). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Stack {
  child: ChildProcess;
  port: number;
  output(): string;
  exited: Promise<number | null>;
  /** The worker process groups the stack recorded in its lock. */
  workerPids(): number[];
  /** Ctrl-C in a terminal: SIGINT to the whole foreground process group (npm, sh, tsx, node). */
  interrupt(): void;
}

const started: Stack[] = [];
after(() => {
  // Whatever a failed test left behind must not outlive the run, nor hold its pipes open.
  for (const s of started) {
    for (const pid of serversOn(s.port)) process.kill(pid, 'SIGKILL');
    for (const pgid of [s.child.pid!, ...s.workerPids()]) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    s.child.stdout?.destroy();
    s.child.stderr?.destroy();
  }
});

async function npmStart(dataDir: string): Promise<Stack> {
  const [port, uiPort, httpPort, issuerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // Only the stack's own settings: never the suite's Temporal or provider configuration, and free
  // ports of its own (other stacks on this machine may hold the default ones).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k)));
  const child = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...env, CORDON_DATA_DIR: dataDir, CORDON_TEMPORAL_PORT: String(port), CORDON_UI_PORT: String(uiPort), CORDON_METRICS_PORT: '0', CORDON_HTTP_PORT: String(httpPort), CORDON_DEV_ISSUER_PORT: String(issuerPort) },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  const workers = new Set<number>();
  const lockFile = join(dataDir, 'stack.lock');
  const watch = setInterval(() => {
    try {
      const held = JSON.parse(readFileSync(lockFile, 'utf8')) as { pid: number; workerPid?: number; apiPid?: number };
      if (held.workerPid) workers.add(held.workerPid);
      if (held.apiPid) workers.add(held.apiPid); // the HTTP API: its own process group too
    } catch {
      // no lock (yet, or any more)
    }
  }, 200);
  void exited.then(() => clearInterval(watch));
  const stack = { child, port, output: () => out, exited, workerPids: () => [...workers], interrupt: () => process.kill(-child.pid!, 'SIGINT') };
  started.push(stack);
  return stack;
}

/** `p`, or a failure saying `what` after `ms`; the timer never keeps the test process alive. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('npm start', { skip: !existsSync('/proc/self/cmdline') && 'needs /proc to find the server process' }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-start-'));

  test('Ctrl-C while the server is still starting leaves no server behind, and the next start works', { timeout: 120_000 }, async () => {
    const first = await npmStart(dataDir);
    await eventually(async () => serversOn(first.port).length > 0, 'the temporal server process to appear', 60_000);
    assert.ok(!first.output().includes('dev server up'), 'the server was already up: the test came too late');
    first.interrupt();
    await within(first.exited, 20_000, '`npm start` did not exit after Ctrl-C');
    // Both the stack's process group and the server (its own group) are gone.
    await eventually(async () => serversOn(first.port).length === 0, 'the interrupted temporal server to exit', 10_000).catch(() => {
      assert.fail(`a temporal server survived Ctrl-C: pid ${serversOn(first.port).join(', ')}\n${first.output()}`);
    });

    const second = await npmStart(dataDir);
    await eventually(async () => second.output().includes('dev server up') || (second.child.exitCode !== null && 'exited'), 'the second start', 60_000);
    assert.match(second.output(), /dev server up/, `the second start failed:\n${second.output()}`);
    assert.ok(existsSync(join(dataDir, 'temporal.db')), 'the SQLite file lives in CORDON_DATA_DIR');

    // A second stack on the same data folder is refused before it starts anything.
    const third = await npmStart(dataDir);
    const code = await within(third.exited, 30_000, 'a second stack on the same data folder did not give up');
    assert.notEqual(code, 0);
    assert.match(third.output(), new RegExp(`another Cordon stack \\(pid \\d+\\) is running on ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), third.output());
    assert.deepEqual(serversOn(third.port), [], 'the refused stack started a server');
    assert.ok(second.child.exitCode === null, 'the running stack is untouched');

    second.interrupt();
    // npm itself dies of the SIGINT; what matters is that the stack stopped in order and whole.
    await within(second.exited, 30_000, 'the running stack did not stop on Ctrl-C');
    await eventually(async () => second.output().includes('cordon: stopped') && !groupAlive(second.child.pid!), 'the stack to report it stopped', 30_000);
    await eventually(async () => serversOn(second.port).length === 0, 'the server to stop with the stack', 10_000);
    assert.ok(!existsSync(join(dataDir, 'stack.lock')), 'the lock is released');
  });

  test('a stack killed with SIGKILL leaves a stale lock: the next start stops its leftovers and starts', { timeout: 120_000 }, async () => {
    const killed = await npmStart(dataDir);
    await eventually(async () => killed.output().includes('dev server up') || (killed.child.exitCode !== null && 'exited'), 'the stack to start', 60_000);
    const held = JSON.parse(readFileSync(join(dataDir, 'stack.lock'), 'utf8')) as { pid: number; serverPid: number };
    await eventually(async () => stackChildren(dataDir).length === 2, 'the worker and the HTTP API to start', 30_000);
    process.kill(held.pid, 'SIGKILL'); // nothing can handle this: its server lives on
    await within(killed.exited, 10_000, 'npm did not exit after its stack process was killed');
    assert.deepEqual(serversOn(killed.port), [held.serverPid], 'the orphaned server is still running');
    // Its worker and API stop themselves, whether or not the stack lived to record their pids.
    await eventually(async () => stackChildren(dataDir).length === 0, "the killed stack's worker and HTTP API to stop by themselves", 20_000).catch(() => {
      assert.fail(`the killed stack's worker or HTTP API lives on: pid ${stackChildren(dataDir).join(', ')}\n${killed.output()}`);
    });

    const next = await npmStart(dataDir);
    await eventually(async () => next.output().includes('dev server up') || (next.child.exitCode !== null && 'exited'), 'the next start', 60_000);
    assert.match(next.output(), /did not stop cleanly is still running: stopping it/, next.output());
    assert.match(next.output(), /dev server up/, next.output());
    assert.deepEqual(serversOn(killed.port), [], 'the orphaned server was stopped');
    next.interrupt();
    await eventually(async () => next.output().includes('cordon: stopped') && !groupAlive(next.child.pid!), 'the stack to stop', 30_000);
    await eventually(async () => serversOn(next.port).length === 0, 'the server to stop with the stack', 10_000);
  });
});

test("a server that cannot start is reported with the server's own error", async () => {
  const cli = await resolveTemporalCli({ build: false });
  assert.ok(cli.path, 'the temporal CLI must be available locally for this test');
  const sockets = new Set<Socket>();
  const taken = createServer((c) => sockets.add(c.on('error', () => undefined)));
  await new Promise<void>((ok) => taken.listen(0, '127.0.0.1', ok));
  const port = (taken.address() as { port: number }).port;
  try {
    await assert.rejects(startDevServer({ cli: cli.path, port, headless: true }), (err: Error) => {
      assert.match(err.message, /address already in use/);
      assert.doesNotMatch(err.message, /is the port taken\?/);
      return true;
    });
  } finally {
    for (const c of sockets) c.destroy();
    taken.close();
  }
});
