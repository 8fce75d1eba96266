// The lab file shared by several worker processes (the cluster drill's two workers on one host):
// concurrent writers lose no update, and a lock left by a writer killed with SIGKILL is broken.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LabDirectory, type LabState } from '../activities/providers/lab';

const WRITES = 60;

test('three processes writing one lab file at once lose no update', { timeout: 60_000 }, async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  const writers = ['a', 'b', 'c'].map((tag) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'lab-writer.ts'), file, String(WRITES), tag], { stdio: ['pipe', 'pipe', 'inherit'] });
    const ready = new Promise<void>((ok) => child.stdout!.once('data', () => ok()));
    const done = new Promise<void>((ok, fail) => child.once('exit', (code) => (code === 0 ? ok() : fail(new Error(`writer ${tag} exited ${code}`)))));
    return { child, ready, done };
  });
  await Promise.all(writers.map((w) => w.ready));
  for (const w of writers) w.child.stdin!.write('go\n');
  await Promise.all(writers.map((w) => w.done));
  const { mutations } = await new LabDirectory(file).read();
  // Without the lock, writers read the same state and each rename drops the others' entries.
  for (const tag of ['a', 'b', 'c']) assert.equal(mutations.filter((m) => m.identity === tag).length, WRITES, `writer ${tag}'s updates`);
  assert.deepEqual(mutations.map((m) => m.seq), mutations.map((_, i) => i + 1));
  assert.ok(!existsSync(`${file}.lock`), 'the lock is released');
});

test('a lock left by a writer that was killed is broken; a live holder’s is waited for', { timeout: 30_000 }, async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  const lab = new LabDirectory(file);
  await lab.seed({});
  // A process that has exited: its pid names no one (a SIGKILLed holder looks the same).
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  writeFileSync(`${file}.lock`, dead);
  await lab.update((s) => void (s.unavailableUntil = 'after a stale lock'));
  assert.equal((await lab.read()).unavailableUntil, 'after a stale lock');
  assert.ok(!existsSync(`${file}.lock`));

  // A live holder (this very process's parent stands in): the writer waits until it is gone.
  writeFileSync(`${file}.lock`, String(process.ppid));
  let finished = false;
  const pending = lab.update((s) => void (s.unavailableUntil = 'after the holder let go')).then(() => (finished = true));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(finished, false, 'a writer must not break a live holder’s lock');
  spawnSync('rm', ['-f', `${file}.lock`]);
  await pending;
  assert.equal((await lab.read()).unavailableUntil, 'after the holder let go');
});

test('a lock a dead process left, whose pid is now ours, is broken too; our own pid file survives it', { timeout: 30_000 }, async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  // As a SIGKILLed holder leaves it: its pid file, linked to the lock's name; the pid came back to us.
  writeFileSync(`${file}.lock.${process.pid}`, String(process.pid));
  linkSync(`${file}.lock.${process.pid}`, `${file}.lock`);
  const lab = new LabDirectory(file);
  await lab.update((s) => void (s.unavailableUntil = 'after our own stale pid'));
  await lab.update((s) => void (s.unavailableUntil = 'and again'));
  assert.equal((await lab.read()).unavailableUntil, 'and again');
  assert.ok(!existsSync(`${file}.lock`), 'the lock is released');
});

test('a pid file removed under this process (by hand, or with its folder) is made again', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  const lab = new LabDirectory(file);
  await lab.update((s) => void (s.unavailableUntil = 'first'));
  assert.ok(existsSync(`${file}.lock.${process.pid}`), 'made once, kept between updates');
  rmSync(`${file}.lock.${process.pid}`);
  await lab.update((s) => void (s.unavailableUntil = 'second'));
  assert.equal((await lab.read()).unavailableUntil, 'second');
  assert.ok(existsSync(`${file}.lock.${process.pid}`), 'made again');
  assert.ok(!existsSync(`${file}.lock`), 'the lock is released');
});

test('an update after the file was written in place (same length, by hand) starts from what the file holds', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  const lab = new LabDirectory(file);
  await lab.update((s) => void (s.unavailableUntil = 'AAAA'));
  // This process keeps what it wrote; an edit of the same size, in place, must still be seen.
  writeFileSync(file, readFileSync(file, 'utf8').replace('"AAAA"', '"BBBB"'));
  const seen = await lab.update((s) => {
    const was = s.unavailableUntil;
    s.mutations.push({ seq: 1, at: new Date().toISOString(), identity: 'hand', op: 'edit', detail: 'seen' });
    return was;
  });
  assert.equal(seen, 'BBBB');
  // Reads share the parsed copy too, on the same condition.
  assert.equal((await lab.snapshot()).unavailableUntil, 'BBBB');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"BBBB"', '"CCCC"'));
  assert.equal((await lab.snapshot()).unavailableUntil, 'CCCC', 'a hand edit after our write');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"CCCC"', '"BBBB"'));
  const after = await lab.read();
  assert.equal(after.unavailableUntil, 'BBBB');
  assert.equal(after.mutations.length, 1);
});

test('an update whose change throws halfway leaves nothing of it behind, in the file or in the next update', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  const lab = new LabDirectory(file);
  await lab.update((s) => void (s.unavailableUntil = 'before'));
  await assert.rejects(
    lab.update((s) => {
      s.unavailableUntil = 'half-done';
      throw new Error('refused halfway');
    }),
    /refused halfway/,
  );
  assert.equal((await lab.snapshot()).unavailableUntil, 'before');
  assert.equal(await lab.update((s) => s.unavailableUntil), 'before');
  assert.equal((await lab.read()).unavailableUntil, 'before');
});

test('updates that wait for a write are saved together, in order, and one that throws halfway leaves nothing of it in the batch', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-lab-lock-')), 'directory.json');
  const lab = new LabDirectory(file);
  const push = (tag: string) => (s: LabState) => s.mutations.push({ seq: s.mutations.length + 1, at: 'now', identity: tag, op: 'write', detail: tag });
  // The first update writes alone; the rest arrive during its write and share the next one.
  const first = lab.update(push('a'));
  const rest = ['b', 'c', 'd'].map((t) => lab.update(push(t)));
  const halfway = lab.update((s) => {
    push('half')(s);
    s.unavailableUntil = 'half-done';
    throw new Error('refused halfway');
  });
  const after = ['e', 'f'].map((t) => lab.update(push(t)));
  assert.deepEqual(await Promise.all([first, ...rest]), [1, 2, 3, 4]);
  await assert.rejects(halfway, /refused halfway/);
  assert.deepEqual(await Promise.all(after), [5, 6], 'the updates after it ran once, on a state without it');
  for (const s of [await lab.snapshot(), await lab.read()]) {
    assert.deepEqual(s.mutations.map((m) => m.identity), ['a', 'b', 'c', 'd', 'e', 'f']);
    assert.equal(s.unavailableUntil, undefined);
  }
});
