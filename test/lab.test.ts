// The lab directory keeps identities by name in a file; names come from signals, so a name such
// as `__proto__` or `constructor` must be just a name: never a path to the worker's prototypes.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { LabProvider } from '../activities/providers/lab';
import { IdentityNotFoundError } from '../activities/providers/provider';
import { SUPPRESSION_ACTIONS } from '../workflows/schemas';
import { labIdentity } from './fixtures';

const HOSTILE = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];
const probe = () => ({}) as Record<string, unknown>;
const clean = () => {
  for (const key of ['polluted', 'highRiskApisBlocked', 'stepUpRequired', 'enabled', 'grants', 'sessions']) {
    assert.equal(probe()[key], undefined, `Object.prototype.${key} is untouched`);
    assert.equal((Object as unknown as Record<string, unknown>)[key], undefined, `Object.${key} is untouched`);
  }
};
const fresh = () => new LabProvider(join(mkdtempSync(join(tmpdir(), 'cordon-lab-')), 'directory.json'));

describe('lab directory: identity names are data', () => {
  afterEach(() => {
    // Undo any pollution so one failure does not cascade into every later test in this process.
    for (const key of ['polluted', 'highRiskApisBlocked', 'stepUpRequired']) {
      delete (Object.prototype as Record<string, unknown>)[key];
      delete (Object as unknown as Record<string, unknown>)[key];
    }
  });

  test('names that exist on every object are missing identities until seeded', async () => {
    const p = fresh();
    await p.dir.seed({ alice: labIdentity() });
    for (const name of HOSTILE) {
      assert.deepEqual(await p.inspect(name), { exists: false, enabled: false, grants: [], sessions: 0 }, name);
      for (const action of SUPPRESSION_ACTIONS) await assert.rejects(p.suppress(name, action), IdentityNotFoundError, `${name} ${action}`);
      await assert.rejects(p.setEnabled(name, false), IdentityNotFoundError);
      await assert.rejects(p.restrict(name, []), IdentityNotFoundError);
      await assert.rejects(p.dependents(name), IdentityNotFoundError);
    }
    clean();
  });

  test('seeded under such names, they are ordinary identities and containing them pollutes nothing', async () => {
    const p = fresh();
    await p.dir.seed(Object.fromEntries(HOSTILE.map((n) => [n, labIdentity()])));
    assert.deepEqual(Object.keys((await p.dir.read()).identities).sort(), [...HOSTILE].sort(), 'every name kept, as an own entry');
    for (const name of HOSTILE) {
      for (const action of SUPPRESSION_ACTIONS) assert.equal((await p.suppress(name, action)).changed, true, `${name} ${action}`);
      await p.restrict(name, ['orders:read']);
      await p.setEnabled(name, false);
      const snap = await p.inspect(name);
      assert.deepEqual({ enabled: snap.enabled, grants: snap.grants }, { enabled: false, grants: ['orders:read'] }, name);
    }
    clean();
    // The file reads back the same, names intact.
    const again = new LabProvider(p.dir.file);
    for (const name of HOSTILE) assert.equal((await again.inspect(name)).exists, true, name);
  });

  test('a directory file with a hostile key pollutes nothing when read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-lab-'));
    const file = join(dir, 'directory.json');
    const identity = { ...labIdentity(), polluted: 'yes' };
    writeFileSync(file, `{"identities": {"__proto__": ${JSON.stringify(identity)}, "constructor": ${JSON.stringify(identity)}}}`);
    const p = new LabProvider(file);
    assert.equal((await p.inspect('__proto__')).exists, true);
    await p.suppress('__proto__', 'block-high-risk-apis');
    await p.suppress('constructor', 'force-step-up');
    clean();
    assert.equal((await p.inspect('alice')).exists, false);
  });
});
