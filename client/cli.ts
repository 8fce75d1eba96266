// `cordon`: the operator's and the script's command line over the client library.
// Exit codes: 0 ok, 1 error, 2 invalid input (nothing was started or changed), 3 command refused.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../activities/config';
import { readSealPublicKey } from '../activities/command-seal';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadApprovedPolicy, readPolicyFile } from '../activities/policy-store';
import { openStateStores } from '../activities/stores';
import { PolicyError } from '../workflows/policy';
import { COMMANDS, CORDON_ROLES, type ContainmentState, type CordonRole } from '../workflows/schemas';
import { connectClient } from './connection';
import { CommandRejectedError, CordonInputError, describeContainment, listContainments, type ContainmentSummary, parseCommand, planOf, prepareCommand, sendCommand, submitSignal } from './containments';
import { runDemo } from './demo';
import { formatEvidence, readEvidence } from './evidence';
import { DevIssuer } from './dev-issuer';
import { operatorToken, storeToken } from './operator-token';

const EXIT = { error: 1, invalid: 2, rejected: 3 } as const;
const LOGIN_ROLES = [...CORDON_ROLES, 'intake'] as const;

function readJson(pathOrDash: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(pathOrDash === '-' ? 0 : pathOrDash, 'utf8');
  } catch (err) {
    throw new CordonInputError(`cannot read ${what} from ${pathOrDash}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CordonInputError(`invalid ${what}: not JSON (${(err as Error).message})`);
  }
}

function print(json: boolean, value: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : human());
}

export function formatState(s: ContainmentState): string {
  const gateText = (x: ContainmentState['plan']['stages'][number]) => `${x.stage}/${x.gate.type}${x.gate.type === 'approval' && x.gate.approvers > 1 ? `×${x.gate.approvers}` : ''}`;
  const lines = [
    `${s.containmentId}: ${s.status} at ${s.position}${s.plan.dryRun ? ' (dry run)' : ''}`,
    `  identity   ${s.target.kind} ${s.target.identityId} on ${s.target.provider}`,
    `  policy     ${s.policy ? `${s.policy.version} sha256 ${s.policy.sha256}` : `${s.plan.policyVersion} (caller-supplied, before v3)`}`,
    `  plan       ${s.plan.rule}: suppress [${s.plan.suppress.join(', ')}], stages [${s.plan.stages.map(gateText).join(' → ')}]${s.plan.rollback?.approvers > 1 ? `, rollback past ${s.plan.rollback.beyond} needs ${s.plan.rollback.approvers} leads` : ''}`,
    `  started    ${s.startedAt}${s.suppressedAt ? `, suppressed ${s.suppressedAt}` : ''}${s.run && s.run > 1 ? ` (run ${s.run})` : ''}`,
  ];
  const w = s.waiting;
  if (w) {
    const approvals = w.approvedBy?.length ? `; approved by ${w.approvedBy.map((a) => a.username).join(', ')} (${w.approvedBy.length}/${w.approversNeeded})` : '';
    lines.push(`  waiting    ${w.for} at gate ${w.gate} since ${w.since}${w.deadline ? `, until ${w.deadline}` : ''}: ${w.detail}${approvals}`);
  } else if (s.pendingDecision) lines.push(`  waiting    ${s.pendingDecision.detail}`);
  if (s.rollbackApprovals?.length) lines.push(`  rollback   approved by ${s.rollbackApprovals.map((a) => a.username).join(', ')} (${s.rollbackApprovals.length}/${s.plan.rollback.approvers})`);
  if (s.nextDeadline) lines.push(`  deadline   ${s.nextDeadline}`);
  if (s.closedReason) lines.push(`  closed     ${s.closedReason}`);
  lines.push(`  signals    ${s.signalCount && s.signalCount > s.signals.length ? `${s.signalCount} in all; latest ` : ''}${s.signals.map((x) => `${x.signalId} (${x.trigger} ${x.confidence})`).join(', ')}`);
  lines.push(`  actions${s.archived?.length ? ` (older ones archived: ${s.archived.map((a) => a.sha256.slice(0, 12)).join(', ')})` : ''}`);
  for (const a of [...s.actions].sort((x, y) => x.at.localeCompare(y.at))) lines.push(`    ${a.at}  ${a.action.padEnd(30)} ${a.outcome.padEnd(13)} ${a.actor}: ${a.detail}`);
  if (s.evidence.length) lines.push('  evidence');
  for (const e of s.evidence) lines.push(`    ${e.kind.padEnd(16)} ${String(e.bytes).padStart(7)} B  cordon evidence ${e.sha256}`);
  for (const e of s.archived ?? []) lines.push(`    ${'older actions'.padEnd(16)} ${String(e.bytes).padStart(7)} B  cordon evidence ${e.sha256}`);
  return lines.join('\n');
}

/** "2026-11-24 14:05", compact for a table (UTC). */
const shortTime = (iso?: string) => (iso ? iso.slice(0, 16).replace('T', ' ') : '-');

/** `cordon list` as a table with a header row. */
export function formatList(rows: ContainmentSummary[]): string {
  const table = [
    ['WORKFLOW ID', 'STATUS', 'STAGE', 'WAITING FOR', 'SINCE (UTC)', 'NEXT DEADLINE', 'TRIGGER', 'RISK', 'TEMPORAL'],
    ...rows.map((r) => [
      `${r.workflowId}${r.dryRun ? ' (dry run)' : ''}`,
      r.status ?? '-',
      r.stage ?? '-',
      r.waitingFor ?? '-',
      shortTime(r.since),
      shortTime(r.nextDeadline),
      r.trigger ?? '-',
      String(r.risk ?? '-'),
      r.executionStatus,
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

function commandType(v: string): (typeof COMMANDS)[number] {
  if (!(COMMANDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${COMMANDS.join(', ')}`);
  return v as (typeof COMMANDS)[number];
}

export function buildCli(getClient: () => Promise<Client> = connectClient): Command {
  const config = () => loadConfig();
  const program = new Command('cordon').description('Durable identity containment on Temporal').showHelpAfterError();
  program.configureOutput({ outputError: (str, write) => write(`cordon: ${str.replace(/^error: /, 'invalid input: ')}`) });
  program.exitOverride((err) => {
    // Commander's own usage errors are invalid input too: nothing ran.
    throw Object.assign(new CordonInputError(err.message), { silent: true, exitCode: err.exitCode === 0 ? 0 : EXIT.invalid });
  });

  program
    .command('submit')
    .description('start or join the containment for the identity named in a signal (JSON)')
    .requiredOption('-f, --file <path>', 'signal JSON file, or - for standard input')
    .option('-p, --policy <path>', 'a candidate policy to try, with --dry-run only (real containments use the worker\'s approved policy)')
    .option('--dry-run', 'run the real playbook with no side effects')
    .option('--json', 'machine-readable output')
    .action(async (o: { file: string; policy?: string; dryRun?: boolean; json?: boolean }) => {
      const signal = readJson(o.file, 'signal');
      const policy = o.policy ? readJson(o.policy, 'policy') : undefined;
      const client = await getClient();
      const r = await submitSignal(client, signal, { taskQueue: config().taskQueue, policy, dryRun: o.dryRun });
      const plan = r.duplicateOf ? undefined : await planOf(client, r.workflowId);
      print(!!o.json, { ...r, plan }, () =>
        r.duplicateOf ? `${r.workflowId}: signal ${r.signal.signalId} was already seen by the closed run ${r.duplicateOf}: nothing changed` : `${r.workflowId}: signal ${r.signal.signalId} accepted (plan ${plan?.rule ?? 'not chosen yet'})`,
      );
    });

  program
    .command('command')
    .description(`steer a containment: ${COMMANDS.join(' | ')}`)
    .argument('<workflowId>')
    .argument('<type>', 'the command', commandType)
    .requiredOption('--reason <why>', 'why (recorded with the command)')
    .option('--gate <id>', 'the gate an advance answers (default: the one waiting now, from describe)')
    .option('--token-file <path>', 'your OIDC access token (default: CORDON_OPERATOR_TOKEN, or the one `cordon login` stored)')
    .option('--signal', 'send as a signal: it cannot report a refusal (the default update does); the refusal is only in the actions')
    .option('--print', 'print the sealed payload for the UI\'s "Send a Signal" dialog (signal name: command) instead of sending it')
    .option('--json', 'machine-readable output')
    .action(async (workflowId: string, type: string, o: { reason: string; gate?: string; tokenFile?: string; signal?: boolean; print?: boolean; json?: boolean }) => {
      const c = config();
      const raw = parseCommand({ type, reason: o.reason, ...(o.gate !== undefined ? { gate: o.gate } : {}) });
      const opts = { token: operatorToken(c, o.tokenFile), sealKey: readSealPublicKey(c.dataDir) };
      const client = await getClient();
      if (o.print) return console.log(JSON.stringify(await prepareCommand(client, workflowId, raw, opts)));
      const r = await sendCommand(client, workflowId, raw, { ...opts, via: o.signal ? 'signal' : 'update' });
      if (o.signal) console.error('cordon: a signal cannot report a refusal: check `cordon describe` (the default, an update, answers)');
      print(!!o.json, { workflowId, command: type, ...r }, () => `${workflowId}: ${type} ${o.signal ? 'sent' : `accepted from ${r.by} (status ${r.status})`}`);
    });

  program
    .command('login')
    .description('DEVELOPMENT ONLY: mint a short-lived operator token from the embedded stack\'s local issuer')
    .requiredOption('--as <name>', 'the operator name to put in the token')
    .requiredOption('--role <role>', `${LOGIN_ROLES.join(' | ')} (intake: a machine client that submits signals over HTTP)`, (v) => {
      if (!(LOGIN_ROLES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${LOGIN_ROLES.join(', ')}`);
      return v as CordonRole | 'intake';
    })
    .option('--ttl <minutes>', 'lifetime in minutes (at most 60)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 60) throw new InvalidArgumentError('a whole number of minutes, 1 to 60');
      return n;
    }, 15)
    .option('--print', 'print the token on standard output instead of storing it (for curl and other HTTP clients)')
    .action(async (o: { as: string; role: CordonRole | 'intake'; ttl: number; print?: boolean }) => {
      const c = config();
      const dev = await DevIssuer.open(c.dataDir);
      const running = dev.running();
      if (!running) throw new CordonInputError('no local development issuer is running on this data folder: `npm start` runs one when no CORDON_OIDC_ISSUER is configured');
      if (c.oidc.issuer && c.oidc.issuer !== running.issuer) throw new CordonInputError(`an issuer is configured (${c.oidc.issuer}): get your token from it and pass --token-file; cordon login is for the embedded stack only`);
      if (!/^[A-Za-z0-9._@-]{1,64}$/.test(o.as)) throw new CordonInputError('--as is 1-64 letters, digits, . _ @ -');
      const roles = o.role === 'intake' ? [c.intakeRole] : [c.oidc.roleNames[o.role]];
      const token = await dev.mint({ issuer: running.issuer, audience: running.audience, username: o.as, roles, ttlSeconds: o.ttl * 60 });
      if (o.print) {
        console.error(`cordon: DEVELOPMENT token for ${o.as} (${o.role}), valid ${o.ttl} min`);
        return console.log(token);
      }
      if (o.role === 'intake') throw new CordonInputError('an intake token is for HTTP clients: add --print');
      const file = storeToken(c, token);
      console.log(`cordon: DEVELOPMENT token for ${o.as} (${o.role}), valid ${o.ttl} min, stored in ${file}`);
    });

  const policy = program.command('policy').description('the approved policy');
  policy
    .command('check')
    .description('validate a policy file and print its version and SHA-256 (every problem is named)')
    .argument('<file>')
    .action((file: string) => {
      try {
        const p = readPolicyFile(file);
        console.log(`${file}: valid, version ${p.version}, sha256 ${p.sha256}, ${p.policy.rules.length} rules`);
      } catch (err) {
        if (err instanceof PolicyError) throw new CordonInputError(err.message);
        throw err;
      }
    });
  policy
    .command('show')
    .description('print the policy this machine\'s workers approve (CORDON_POLICY, or the shipped default) as JSON')
    .action(() => {
      const p = loadApprovedPolicy(config().policyFile);
      console.error(`cordon: ${config().policyFile ?? 'shipped default'}: version ${p.version}, sha256 ${p.sha256}`);
      console.log(JSON.stringify(p.policy, null, 2));
    });

  program
    .command('describe')
    .description('the full state of a containment')
    .argument('<workflowId>')
    .option('--json', 'machine-readable output')
    .action(async (workflowId: string, o: { json?: boolean }) => {
      const s = await describeContainment(await getClient(), workflowId);
      print(!!o.json, s, () => formatState(s));
    });

  program
    .command('list')
    .description('containments, filtered through Temporal visibility')
    .option('--stage <stage>')
    .option('--status <status>')
    .option('--provider <provider>')
    .option('--kind <kind>')
    .option('--identity <id>')
    .option('--open', 'running containments only')
    .option('--limit <n>', 'at most this many', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive whole number');
      return n;
    }, 100)
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean; limit: number } & Record<string, unknown>) => {
      const { json, limit, ...filter } = o;
      const rows = await listContainments(await getClient(), filter, limit);
      print(!!json, rows, () => (rows.length ? formatList(rows) : 'no containments match'));
    });

  program
    .command('evidence')
    .description('print an evidence artifact (or archived action records) by its SHA-256, as describe and the UI name it; a unique prefix of 12 or more hex digits will do')
    .argument('<sha256>')
    .option('--json', 'the stored envelope as JSON')
    .action(async (sha: string, o: { json?: boolean }) => {
      const stores = openStateStores(config()); // the store the workers write: files here, or PostgreSQL
      try {
        const e = await readEvidence(stores.evidence, sha);
        print(!!o.json, e, () => formatEvidence(e));
      } finally {
        await stores.close();
      }
    });

  program
    .command('secret')
    .description("read a rotated credential from the vault (needs an authenticated principal with the reader role; every read is audited)")
    .argument('<ref>', 'the vault reference from the containment, e.g. vault:1a2b...')
    .option('--token-file <path>', 'your OIDC access token (default: CORDON_OPERATOR_TOKEN, or the one `cordon login` stored)')
    .action(async (ref: string, o: { tokenFile?: string }) => {
      const c = config();
      const audit = (entry: Record<string, unknown>) => {
        mkdirSync(join(c.dataDir, 'audit'), { recursive: true, mode: 0o700 });
        appendFileSync(join(c.dataDir, 'audit', 'secret-reads.jsonl'), `${JSON.stringify({ at: new Date().toISOString(), ref, ...entry })}\n`, { mode: 0o600 });
      };
      let who;
      try {
        who = await new OperatorVerifier(c.oidc).principal(operatorToken(c, o.tokenFile));
      } catch (err) {
        if (err instanceof CordonInputError) {
          audit({ outcome: 'refused', reason: 'no token' });
          throw err;
        }
        audit({ outcome: 'refused', reason: (err as Error).message });
        throw new CommandRejectedError(`reading a secret needs a valid operator token: ${(err as Error).message}`);
      }
      const principal = { iss: who.iss, sub: who.sub, username: who.username, jti: who.jti };
      if (!who.roles.includes(c.secretReaderRole)) {
        audit({ outcome: 'refused', reason: `role ${c.secretReaderRole} required`, ...principal });
        throw new CommandRejectedError(`reading a secret needs the ${c.secretReaderRole} role; ${who.username} has ${who.roles.join(', ') || 'none'}`);
      }
      const stores = openStateStores(c); // the same vault the workers write: files here, or PostgreSQL
      try {
        const r = await stores.secrets.read(ref);
        audit({ outcome: 'read', ...principal });
        console.log(r.secret);
      } finally {
        await stores.close();
      }
    });

  program
    .command('demo')
    .description('seed the lab directory and submit a few realistic signals, to watch in the Temporal UI')
    .action(async () => {
      await runDemo(await getClient(), config());
    });

  return program;
}

/** Temporal errors wrap the useful part ("workflow not found", a failed task): show the chain. */
function causes(err: Error): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 4; e = e.cause) parts.push(e.message);
  return [...new Set(parts)].join(': ');
}

export async function runCli(argv: string[]): Promise<number> {
  try {
    await buildCli().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as Error & { silent?: boolean; exitCode?: number };
    if (e.silent) return e.exitCode ?? EXIT.invalid;
    if (err instanceof CordonInputError) {
      console.error(`cordon: ${e.message}`);
      return EXIT.invalid;
    }
    if (err instanceof CommandRejectedError) {
      console.error(`cordon: refused: ${e.message}`);
      return EXIT.rejected;
    }
    console.error(`cordon: ${causes(e)}`);
    return EXIT.error;
  }
}

if (require.main === module) {
  // Exit only after stdout drains, so piped --json output is never cut short.
  runCli(process.argv.slice(2)).then((code) => process.stdout.write('', () => process.exit(code)));
}
