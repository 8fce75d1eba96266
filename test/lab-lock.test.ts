// The lab file shared by several worker processes (the cluster drill's two workers on one host):
// concurrent writers lose no update, and a lock left by a writer killed with SIGKILL is broken.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LabDirectory } from '../activities/providers/lab';

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
