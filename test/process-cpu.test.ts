// The bench's "where the cores went": CPU time by kind of process, read from /proc.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuSince } from '../scripts/process-cpu';

const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

test('CPU spent by this process and by a provider server is counted for each, and nothing else is', async () => {
  // A busy child whose name is a provider server's (the kind comes from the process name).
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cpu-'));
  const fake = join(dir, 'redis-server');
  symlinkSync(process.execPath, fake);
  const cpu = cpuSince();
  const child = spawn(fake, ['-e', 'const end = Date.now() + 400; while (Date.now() < end);'], { stdio: 'ignore' });
  spin(300);
  // Read while the child still runs: a process that ended meanwhile is not counted.
  await new Promise((r) => setTimeout(r, 50));
  const seen = cpu();
  await new Promise((r) => child.once('exit', r));
  assert.ok(seen.bench! >= 250, `this process spun 300 ms: ${JSON.stringify(seen)}`);
  assert.ok(seen.redis! >= 150, `the child spun for most of 350 ms: ${JSON.stringify(seen)}`);
  assert.deepEqual(Object.keys(seen).filter((k) => !['bench', 'redis', 'engine', 'keycloak', 'postgres'].includes(k)), []);
});
