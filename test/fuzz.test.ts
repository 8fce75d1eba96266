// Thousands of malformed signals and commands, generated from a seed, through the client library,
// and a few dozen through the CLI: each is refused as invalid input naming the field, nothing
// crashes or pollutes a prototype, and visibility shows that no workflow was started for any.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { CordonInputError, sendCommand, submitSignal } from '../client/containments';
import { mapLimit } from '../scripts/measure';
import { containmentWorkflowId } from '../workflows/ids';
import { SA } from '../workflows/search-attributes';
import { closeTestEnv, testEnv } from './harness';
import { eventually, prng, signal } from './fixtures';

after(closeTestEnv);

const SEED = Number(process.env.CORDON_FUZZ_SEED ?? 20261123);
const rand = prng(SEED);
const PREFIX = 'fuzz-';
const QUEUE = 'cordon-fuzz';

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const insert = (v: string, ch: string) => {
  const at = between(0, v.length);
  return v.slice(0, at) + ch + v.slice(at);
};

/** A generated input and what its refusal must name: field paths, or `"key"` for an unknown key. */
interface Case {
  what: string;
  input: unknown;
  names: string[];
}

// ---- what is wrong, per field ---------------------------------------------------------------------
const CONTROL_AND_UNICODE = ['\u0000', '\u0007', '\n', '\r', '\t', ' ', '\u007f', '\u202e', '\u200b', '\ufeff', '\uffff', '\ud800', 'é', 'Ω', '😀'];
const NOT_STRING = [0, 1, -1, 3.14, true, false, null, {}, [], ['x'], { value: 'x' }, 10n];
const NOT_NUMBER = ['0.5', '', '1e2', 'NaN', true, false, null, {}, [], [0.5], 10n];
const hugeString = (min: number) => pick(['x', 'é', '😀', 'A-']).repeat(pick([min, min * 5, 65_536, 100_000]));
const BAD_TIMESTAMPS = ['yesterday', '', 'T', '2024-13-01T00:00:00Z', '2024-02-30T00:00:00Z', '2024-01-01', '2024-01-01T00:00:00', '2024-01-01T25:00:00Z', '2024-01-01T00:00:60Z', '1700000000000', '2024-01-01 00:00:00Z', '2024-01-01t00:00:00Z', '2024-01-01T00:00Z', '2024-01-01T00:00:00+25:00', '2024-01-01T00:00:00+0100', '+275760-09-13T00:00:00Z'];

interface FieldSpec {
  type: 'string' | 'number' | 'object';
  required: boolean;
  /** Whether inserting a control or non-ASCII character makes the value invalid. */
  strictText?: boolean;
  maxLength?: number;
  /** Values of the right type that are still wrong: [value, the path named]. */
  bad: Array<[unknown, string?]>;
}

const SIGNAL_FIELDS: Record<string, FieldSpec> = {
  signalId: { type: 'string', required: true, strictText: true, maxLength: 200, bad: [[''], ['a b'], ['x'.repeat(201)]] },
  provider: { type: 'string', required: true, strictText: true, maxLength: 32, bad: [['Lab'], ['lab!'], ['-lab'], [''], ['1lab'], ['a'.repeat(33)], ['KEYCLOAK'], ['lab_x']] },
  identityId: { type: 'string', required: true, strictText: true, maxLength: 200, bad: [[''], ['a b'], ['tab\there'], ['x'.repeat(201)]] },
  identityKind: { type: 'string', required: true, strictText: true, bad: [['robot'], ['Human'], ['HUMAN'], ['service_account'], [''], ['human ']] },
  trigger: { type: 'string', required: true, strictText: true, bad: [['vibes'], ['custom:'], ['custom:UPPER'], ['custom:a b'], ['Custom:x'], [`custom:${'a'.repeat(64)}`], ['secret_exposed'], ['']] },
  confidence: { type: 'number', required: true, bad: [[-0.0001], [1.0001], [2], [-1], [NaN], [Infinity], [-Infinity], [1e308], [-1e-300]] },
  riskScore: { type: 'number', required: true, bad: [[-1], [101], [50.5], [0.1], [NaN], [Infinity], [1e21], [-0.5], [Number.MAX_SAFE_INTEGER]] },
  assetCriticality: { type: 'string', required: true, strictText: true, bad: [['extreme'], ['HIGH'], ['none'], [''], ['med']] },
  privilegeLevel: { type: 'string', required: true, strictText: true, bad: [['root'], ['Low'], [''], ['critical!']] },
  scope: {
    type: 'object',
    required: false,
    bad: [[{ sessionId: '' }, 'scope.sessionId'], [{ sessionId: 'a b' }, 'scope.sessionId'], [{ tokenId: 'x'.repeat(201) }, 'scope.tokenId'], [{ deviceId: 5 }, 'scope.deviceId'], [{ credentialId: null }, 'scope.credentialId'], [{ tenant: 'x' }, 'scope']],
  },
  source: { type: 'string', required: true, maxLength: 200, bad: [['']] },
  observedAt: { type: 'string', required: true, strictText: true, bad: BAD_TIMESTAMPS.map((t) => [t]) },
};

const COMMAND_FIELDS: Record<string, FieldSpec> = {
  type: { type: 'string', required: true, strictText: true, bad: [['nuke'], ['ADVANCE'], ['Advance'], ['advance '], [' advance'], ['adv'], [''], ['dependencies_cleared'], ['rollback!']] },
  reason: { type: 'string', required: true, maxLength: 2000, bad: [['']] },
  gate: { type: 'string', required: false, strictText: true, bad: [['x'], ['rotate#'], ['#1'], ['Rotate#1'], ['rotate#1234567'], ['rotate#1 ']] },
};

const EXTRA_KEYS = ['extra', '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isAdmin', 'signal_id', 'SignalId', '', ' ', '😀', '\u0000', '$where'];

/** One way to break `field`, applied to `obj`; returns the description and the path the refusal names. */
function breakField(obj: Record<string, unknown>, field: string, spec: FieldSpec): [string, string] {
  const ways: Array<() => [string, string]> = [
    () => {
      const [v, path] = pick(spec.bad);
      obj[field] = v;
      return [`bad value ${JSON.stringify(v)?.slice(0, 40)}`, path ?? field];
    },
    () => {
      obj[field] = pick(spec.type === 'number' ? NOT_NUMBER : spec.type === 'object' ? ['x', 1, true, null, [], [{}]] : NOT_STRING);
      return [`wrong type ${typeof obj[field]}`, field];
    },
  ];
  if (spec.required) ways.push(() => (delete obj[field], ['missing', field]));
  if (spec.maxLength) ways.push(() => ((obj[field] = hugeString(spec.maxLength! + 1)), [`huge string (${(obj[field] as string).length})`, field]));
  if (spec.strictText) ways.push(() => ((obj[field] = insert(String(obj[field]), pick(CONTROL_AND_UNICODE))), ['control or unicode character', field]));
  return pick(ways)();
}

/** An own, enumerable key, even `__proto__` (an object literal would set the prototype instead). */
const defineKey = (obj: object, key: string, value: unknown) => Object.defineProperty(obj, key, { value, enumerable: true, configurable: true, writable: true });

const PROTO_PAYLOADS: Array<[string, string[]]> = [
  ['{"__proto__":{"polluted":true}}', ['"__proto__"']],
  ['{"constructor":{"prototype":{"polluted":true}}}', ['"constructor"']],
];

const WHOLE_INPUTS: Array<[string, unknown]> = [
  ['null', null], ['undefined', undefined], ['zero', 0], ['negative', -1], ['NaN', NaN], ['huge number', 1e308], ['empty string', ''], ['a string', 'signal'],
  ['true', true], ['false', false], ['empty array', []], ['bigint', 10n], ['symbol', Symbol('s')], ['function', () => ({})],
];

function generate(base: () => Record<string, unknown>, fields: Record<string, FieldSpec>, kind: string): Case {
  const r = rand();
  if (r < 0.05) {
    const [what, input] = pick(WHOLE_INPUTS);
    return { what: `${kind} as ${what}`, input, names: ['(input)'] };
  }
  if (r < 0.07) {
    const input = pick([{}, Object.create(null) as object, new Map(), new Date(), [base()]]);
    const names = Array.isArray(input) ? ['(input)'] : Object.entries(fields).filter(([, s]) => s.required).map(([f]) => f);
    return { what: `${kind} as ${Object.prototype.toString.call(input)}`, input, names };
  }
  const obj = base();
  const names: string[] = [];
  const what: string[] = [];
  if (r < 0.1) {
    const [json, named] = pick(PROTO_PAYLOADS);
    const payload = JSON.parse(json) as Record<string, unknown>;
    for (const key of Object.keys(payload)) defineKey(obj, key, payload[key]);
    return { what: `${kind} with prototype-polluting ${json}`, input: obj, names: named };
  }
  const chosen = Object.keys(fields)
    .map((f) => ({ f, key: rand() }))
    .sort((a, b) => a.key - b.key)
    .slice(0, between(1, 3))
    .map((x) => x.f);
  for (const field of chosen) {
    const [how, path] = breakField(obj, field, fields[field]!);
    what.push(`${field}: ${how}`);
    names.push(path);
  }
  if (rand() < 0.15) {
    const key = pick(EXTRA_KEYS);
    defineKey(obj, key, pick(['x', 1, null, { polluted: true }]));
    what.push(`extra key ${JSON.stringify(key)}`);
    names.push(`"${key}"`);
  }
  return { what: `${kind} with ${what.join(', ')}`, input: obj, names };
}

let n = 0;
const baseSignal = () => ({ ...signal({ identityId: `${PREFIX}${++n}` }), scope: { sessionId: 'sess-1' } }) as Record<string, unknown>;
const baseCommand = () => ({ type: 'advance', reason: 'fuzz', gate: 'restrict#1' }) as Record<string, unknown>;
const preview = (v: unknown) => {
  try {
    return (JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v)).slice(0, 300);
  } catch {
    return String(v).slice(0, 300);
  }
};

/** Whether a refusal's `path: message; ...` list names `name`: its path, or the unknown key quoted. */
const names = (issues: string, name: string) =>
  issues.split('; ').some((s) => (name.startsWith('"') ? s.includes('Unrecognized key') && s.includes(name) : s.startsWith(`${name}: `)));

function assertRefused(err: unknown, c: Case, prefix: string): void {
  assert.ok(err instanceof CordonInputError, `${c.what}: expected CordonInputError, got ${err instanceof Error ? `${err.name}: ${err.message}` : `acceptance`}\ninput: ${preview(c.input)}`);
  assert.ok(err.message.startsWith(prefix), `${c.what}: message ${JSON.stringify(err.message.slice(0, 300))} does not start with ${prefix}`);
  for (const name of c.names) {
    assert.ok(names(err.message.slice(prefix.length), name), `${c.what}: the refusal does not name ${name}: ${JSON.stringify(err.message.slice(0, 500))}\ninput: ${preview(c.input)}`);
  }
}

/** How many cases of each kind, for the test's diagnostics. */
function tally(cases: Case[]): string {
  const kinds = ['missing', 'wrong type', 'bad value', 'huge string', 'control or unicode', 'extra key', 'prototype-polluting', ' as '];
  return kinds.map((k) => `${k.trim()} ${cases.filter((c) => c.what.includes(k)).length}`).join(', ');
}

const SIGNAL_CASES = Array.from({ length: 2400 }, () => generate(baseSignal, SIGNAL_FIELDS, 'signal'));
const COMMAND_CASES = Array.from({ length: 600 }, () => generate(baseCommand, COMMAND_FIELDS, 'command'));

describe(`fuzzed input through the client library (seed ${SEED}; CORDON_FUZZ_SEED replays another)`, () => {
  test(`${SIGNAL_CASES.length} malformed signals are refused naming the field`, async (t) => {
    t.diagnostic(tally(SIGNAL_CASES));
    const { client } = await testEnv();
    for (const c of SIGNAL_CASES) {
      const err = await submitSignal(client, c.input, { taskQueue: QUEUE }).then(() => undefined, (e: unknown) => e);
      assertRefused(err, c, 'invalid signal: ');
    }
  });

  test(`${COMMAND_CASES.length} malformed commands are refused naming the field, as update or signal`, async (t) => {
    t.diagnostic(tally(COMMAND_CASES));
    const { client } = await testEnv();
    for (const c of COMMAND_CASES) {
      const via = rand() < 0.5 ? 'update' : 'signal';
      // Validation comes before sealing: no token or key is ever used for a malformed command.
      const err = await sendCommand(client, containmentWorkflowId({ provider: 'lab', identityId: `${PREFIX}none` }), c.input, { via, token: 'unused', sealKey: {} }).then(() => undefined, (e: unknown) => e);
      assertRefused(err, c, 'invalid command: ');
    }
  });

  test('no prototype was polluted', () => {
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
  });
});

describe('fuzzed input through the CLI', () => {
  const CLI = join(__dirname, '..', 'client', 'cli.ts');
  // Asynchronous, a few at a time: each is a fresh Node process.
  const run = (args: string[], input?: string) =>
    new Promise<{ status: number | null; stderr: string }>((ok) => {
      const child = execFile(process.execPath, ['--import', 'tsx', CLI, ...args], {
        encoding: 'utf8',
        maxBuffer: 8 * 2 ** 20,
        env: { ...process.env, TEMPORAL_ADDRESS: process.env.CORDON_TEST_TEMPORAL_ADDRESS, CORDON_TASK_QUEUE: QUEUE },
      });
      let stderr = '';
      child.stderr!.on('data', (d: string) => (stderr += d));
      child.on('close', (status) => ok({ status, stderr }));
      child.stdin!.end(input ?? '');
    });

  /** Only cases that survive JSON unchanged: NaN, undefined or a bigint would mean another input. */
  const jsonFaithful = (v: unknown) => {
    try {
      return typeof v === 'object' && v !== null && isDeepStrictEqual(JSON.parse(JSON.stringify(v)), v);
    } catch {
      return false;
    }
  };

  test('a few dozen malformed signals on standard input exit 2 naming the field', async () => {
    const cases = SIGNAL_CASES.filter((c) => jsonFaithful(c.input)).slice(0, 30);
    assert.equal(cases.length, 30);
    await mapLimit(cases, 3, async (c) => {
      const r = await run(['submit', '--file', '-'], JSON.stringify(c.input));
      assert.equal(r.status, 2, `${c.what}: exit ${r.status}\n${r.stderr}`);
      const line = r.stderr.split('\n').find((l) => l.startsWith('cordon: invalid signal: '));
      assert.ok(line, `${c.what}: no "invalid signal" line in ${JSON.stringify(r.stderr.slice(0, 500))}`);
      for (const name of c.names) assert.ok(names(line.slice('cordon: invalid signal: '.length), name), `${c.what}: stderr does not name ${name}: ${JSON.stringify(line.slice(0, 500))}`);
    });
  });

  test('malformed commands and JSON exit 2 naming what is wrong', async () => {
    const wf = containmentWorkflowId({ provider: 'lab', identityId: `${PREFIX}none` });
    const cases: Array<[string, string[], RegExp, string?]> = [
      ['unknown command type', ['command', wf, 'nuke', '--reason', 'r'], /argument 'type'.*expected one of advance/],
      ['command type with a control character', ['command', wf, 'advance\u0007', '--reason', 'r'], /argument 'type'/],
      ['a malformed gate', ['command', wf, 'advance', '--gate', 'rotate', '--reason', 'r'], /invalid command: gate: gate is the id describe shows/],
      ['a --by (the token says who acts)', ['command', wf, 'hold', '--by', 'me', '--reason', 'r'], /unknown option '--by'/],
      ['empty reason', ['command', wf, 'abort', '--reason', ''], /invalid command: reason: a command says why/],
      ['huge reason', ['command', wf, 'rollback', '--reason', 'é'.repeat(2001)], /invalid command: reason: /],
      ['no --reason', ['command', wf, 'advance'], /--reason/],
      ['not JSON', ['submit', '--file', '-'], /invalid signal: not JSON/, '{"signalId": '],
      ['a JSON array', ['submit', '--file', '-'], /invalid signal: \(input\): Invalid input: expected object, received array/, '[]'],
      ['JSON null', ['submit', '--file', '-'], /invalid signal: \(input\): /, 'null'],
    ];
    await mapLimit(cases, 3, async ([what, args, message, input]) => {
      const r = await run(args, input);
      assert.equal(r.status, 2, `${what}: exit ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, message, what);
    });
  });
});

test('visibility shows no workflow started for any fuzz input', async () => {
  const { client } = await testEnv();
  const list = async (query: string) => {
    const ids: string[] = [];
    for await (const w of client.workflow.list({ query })) ids.push(w.workflowId);
    return ids;
  };
  // A control on the same task queue proves the queries can see a start when there is one.
  const control = signal({ identityId: `fuzzctl-${SEED}` });
  const { workflowId } = await submitSignal(client, control, { taskQueue: QUEUE });
  try {
    await eventually(async () => (await list(`${SA.identity.name} = "${control.identityId}"`)).length === 1, 'the control containment to appear in visibility');
    assert.deepEqual(await list(`${SA.identity.name} STARTS_WITH "${PREFIX}"`), [], 'containments were started for fuzz identities');
    assert.deepEqual(await list(`WorkflowId STARTS_WITH "cordon/lab/${PREFIX}"`), [], 'workflows exist under fuzz identities');
    assert.deepEqual(await list(`TaskQueue = "${QUEUE}"`), [workflowId], 'something besides the control started on the fuzz task queue');
    // Strongly consistent, for a sample of the identities the fuzz cases were built from.
    for (let i = 1; i <= n; i += Math.ceil(n / 25)) {
      await assert.rejects(client.workflow.getHandle(containmentWorkflowId({ provider: 'lab', identityId: `${PREFIX}${i}` })).describe(), WorkflowNotFoundError);
    }
  } finally {
    await client.workflow.getHandle(workflowId).terminate('fuzz control');
  }
});
