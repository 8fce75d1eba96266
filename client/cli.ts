// `cordon`: the operator's and the script's command line over the client library.
// Exit codes: 0 ok, 1 error, 2 invalid input (nothing was started or changed), 3 command refused.
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../activities/config';
import { LocalVault } from '../activities/secret-sink';
import { COMMANDS, type ContainmentState } from '../workflows/schemas';
import { connectClient } from './connection';
import { CommandRejectedError, CordonInputError, describeContainment, listContainments, sendCommand, submitSignal } from './containments';
import { runDemo } from './demo';

const EXIT = { error: 1, invalid: 2, rejected: 3 } as const;

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
  const lines = [
    `${s.containmentId}: ${s.status} at ${s.position}${s.plan.dryRun ? ' (dry run)' : ''}`,
    `  identity   ${s.target.kind} ${s.target.identityId} on ${s.target.provider}`,
    `  plan       ${s.plan.rule} (${s.plan.policyVersion}): suppress [${s.plan.suppress.join(', ')}], stages [${s.plan.stages.map((x) => `${x.stage}/${x.gate.type}`).join(' → ')}]`,
    `  started    ${s.startedAt}${s.suppressedAt ? `, suppressed ${s.suppressedAt}` : ''}`,
  ];
  if (s.pendingDecision) lines.push(`  waiting    ${s.pendingDecision.detail}`);
  if (s.nextDeadline) lines.push(`  deadline   ${s.nextDeadline}`);
  if (s.closedReason) lines.push(`  closed     ${s.closedReason}`);
  lines.push(`  signals    ${s.signals.map((x) => `${x.signalId} (${x.trigger} ${x.confidence})`).join(', ')}`);
  lines.push('  actions');
  for (const a of s.actions) lines.push(`    ${a.at}  ${a.action.padEnd(30)} ${a.outcome.padEnd(13)} ${a.actor}: ${a.detail}`);
  if (s.evidence.length) lines.push('  evidence');
  for (const e of s.evidence) lines.push(`    ${e.kind.padEnd(16)} sha256 ${e.sha256} ${e.uri}`);
  return lines.join('\n');
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
    .option('-p, --policy <path>', 'policy JSON file (default: the shipped policy)')
    .option('--dry-run', 'run the real playbook with no side effects')
    .option('--json', 'machine-readable output')
    .action(async (o: { file: string; policy?: string; dryRun?: boolean; json?: boolean }) => {
      const signal = readJson(o.file, 'signal');
      const policy = o.policy ? readJson(o.policy, 'policy') : undefined;
      const r = await submitSignal(await getClient(), signal, { taskQueue: config().taskQueue, policy, dryRun: o.dryRun });
      print(!!o.json, r, () => `${r.workflowId}: signal ${r.signal.signalId} accepted (plan ${r.plan})`);
    });

  program
    .command('command')
    .description(`steer a containment: ${COMMANDS.join(' | ')}`)
    .argument('<workflowId>')
    .argument('<type>', 'the command', commandType)
    .requiredOption('--by <who>', 'who gives the command')
    .requiredOption('--reason <why>', 'why')
    .option('--signal', 'send as a signal (no answer) instead of a validated update')
    .option('--json', 'machine-readable output')
    .action(async (workflowId: string, type: string, o: { by: string; reason: string; signal?: boolean; json?: boolean }) => {
      const r = await sendCommand(await getClient(), workflowId, { type, by: o.by, reason: o.reason }, { via: o.signal ? 'signal' : 'update' });
      print(!!o.json, { workflowId, command: type, ...r }, () => `${workflowId}: ${type} ${o.signal ? 'sent' : `accepted (status ${r.status})`}`);
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
      print(!!json, rows, () =>
        rows.length
          ? rows.map((r) => `${r.workflowId.padEnd(48)} ${String(r.status).padEnd(15)} ${String(r.stage).padEnd(11)} ${r.trigger} risk=${r.risk} ${r.executionStatus}`).join('\n')
          : 'no containments match',
      );
    });

  program
    .command('secret')
    .description("read a rotated credential from the local vault (the identity owner's path)")
    .argument('<ref>', 'the vault reference from the containment, e.g. vault:1a2b...')
    .action(async (ref: string) => {
      const c = config();
      const r = await new LocalVault(c.vaultDir, c.vaultKey).read(ref);
      console.log(r.secret);
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
