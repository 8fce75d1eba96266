// The small fault drill (scripts/drill-core.ts) on its own dev server, which it kills: worker
// kill -9s, a server kill and restart on the same SQLite file, and a lab outage under a batch of
// containments. Nothing may be lost and no mutation applied twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SMALL_DRILL, runDrill } from '../scripts/drill-core';

const seed = Number(process.env.CORDON_DRILL_SEED ?? SMALL_DRILL.seed);

test('a small drill loses no containment and applies no mutation twice', { timeout: 240_000 }, async (t) => {
  const r = await runDrill({ ...SMALL_DRILL, seed, onEvent: (text) => t.diagnostic(text) });
  const where = `(seed ${r.seed}; CORDON_DRILL_SEED=${r.seed} replays the fault plan; server database, lab file and worker log kept in ${r.dataDir})`;
  assert.deepEqual(r.lost, [], `${r.lost.length} of ${r.containments} containments lost ${where}`);
  assert.deepEqual(r.duplicates, [], `${r.duplicates.length} mutations applied more than once ${where}`);
  assert.deepEqual(r.unexpected, [], `mutations no step asked for ${where}`);
  assert.deepEqual(r.leaks, [], `rotated secrets outside the vault ${where}`);
  assert.equal(r.secretsScanned, SMALL_DRILL.containments, 'every containment rotated one secret, and the scan looked for each');
  assert.deepEqual(r.finalStates, { 'completed contained disabled': SMALL_DRILL.containments });
  // The faults really happened.
  assert.equal(r.workerKills, SMALL_DRILL.workerKills);
  assert.equal(r.serverRestarts, SMALL_DRILL.serverRestarts);
  assert.ok(r.outageSeconds > 0, `the lab outage overlapped no running worker (${r.outageSeconds} s)`);
  t.diagnostic(`${r.containments} containments, ${r.workerKills} worker kills, ${r.serverRestarts} server restart(s), ${r.outageSeconds.toFixed(1)} s lab outage, ${r.retriedCalls} retried no-op calls explained by a fault, ${r.durationSeconds.toFixed(1)} s`);
});
