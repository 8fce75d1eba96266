// The bench's and drill's progress output: redrawn in place on a terminal, a few milestone lines
// per phase anywhere else (CI logs), however many updates arrive and in whatever order.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Progress } from '../scripts/measure';

/** A stream that records what was written; `tty` makes it look like a terminal. */
function sink(tty: boolean): { out: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(w, { isTTY: tty || undefined, columns: 100 });
  return { out: w, text: () => text };
}

test('progress off a terminal prints a few milestones per phase, even with phases interleaved', () => {
  const { out, text } = sink(false);
  const p = new Progress(out);
  const n = 1000;
  for (let i = 1; i <= n; i++) {
    // Two phases updated alternately (a scale phase's starts and its count poll), and a detail
    // that changes on every update (the drill's "N signals sent").
    p.update('scale: start', i, n, `${i} sent`);
    p.update('scale: park at the gate', Math.floor(i / 2), n, `${i} polls`);
  }
  p.note('drill: worker killed (SIGKILL)');
  p.end();
  const lines = text().split('\n').filter(Boolean);
  assert.ok(!text().includes('\r'), 'no carriage returns in a log');
  const per = (phase: string) => lines.filter((l) => l.includes(` ${phase}`)).length;
  assert.ok(per('scale: start') <= 6, `${per('scale: start')} lines for one phase:\n${lines.slice(0, 20).join('\n')}`);
  assert.ok(per('scale: park at the gate') <= 6, `${per('scale: park at the gate')} lines for one phase`);
  assert.ok(lines.some((l) => l.includes('100% scale: start')), 'the phase is reported done');
  assert.ok(lines.includes('drill: worker killed (SIGKILL)'), 'notes are printed as they come');
  assert.ok(lines.length <= 13, `${lines.length} lines in all`);
});

test('progress off a terminal prints a new round of milestones when a phase starts over', () => {
  const { out, text } = sink(false);
  const p = new Progress(out);
  for (const c of [1, 8, 32]) for (let i = 1; i <= 200; i++) p.update('engine floor', i, 200, `concurrency ${c}`);
  const lines = text().split('\n').filter(Boolean);
  assert.equal(lines.filter((l) => l.startsWith('[####################] 100% engine floor')).length, 3, lines.join('\n'));
  assert.ok(lines.length <= 3 * 5, `${lines.length} lines`);
});

test('progress off a terminal says it is still alive during a long stretch without a milestone', () => {
  const { out, text } = sink(false);
  let now = 0;
  const p = new Progress(out, { now: () => now, heartbeatMs: 60_000 });
  for (let s = 0; s <= 300; s++) {
    now = s * 1000;
    p.update('drill', 0, 24, 'containments closed');
    p.tick('go install', `${s} steps`);
  }
  const lines = text().split('\n').filter(Boolean);
  const drill = lines.filter((l) => l.includes('drill')).length;
  const build = lines.filter((l) => l.includes('go install')).length;
  assert.ok(drill >= 5 && drill <= 7, `${drill} drill lines over 5 minutes: ${lines.join('\n')}`);
  assert.ok(build >= 5 && build <= 7, `${build} build lines over 5 minutes`);
});

test('progress on a terminal redraws one line in place and clears it at the end', () => {
  const { out, text } = sink(true);
  let now = 0;
  const p = new Progress(out, { now: () => now });
  for (let i = 1; i <= 1000; i++) {
    now += 5;
    p.update('engine floor', i, 1000, 'concurrency 8');
  }
  p.tick('go install', '12 steps');
  assert.ok(!text().includes('\n'), 'updates never start a new line');
  assert.ok(text().includes('\r[####################] 100% engine floor'), 'the last update is drawn');
  const before = text().length;
  p.note('drill: dev server killed');
  assert.ok(text().slice(before).includes('\rdrill: dev server killed\n'), 'a note gets its own line above the bar');
  p.end();
  assert.ok(text().endsWith('\r'), 'the bar is cleared');
});
