// CPU time by the kind of process that spent it, from /proc: where a burst's cores went (the
// engine, this process's worker and client, the provider's server). By process name, host-wide:
// on the cluster the server's own PostgreSQL counts as postgres. Linux only; elsewhere empty.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux
const KINDS: [RegExp, string][] = [
  [/^temporal/, 'engine'],
  [/^java$/, 'keycloak'],
  [/^redis-server$/, 'redis'],
  [/^postgres$/, 'postgres'],
];

type Snapshot = Map<number, { kind: string; ms: number }>;

function snapshot(): Snapshot {
  const out: Snapshot = new Map();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const p of pids) {
    const pid = Number(p);
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const kind = pid === process.pid ? 'bench' : KINDS.find(([re]) => re.test(comm))?.[1];
      if (!kind) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, { kind, ms: (Number(f[11]) + Number(f[12])) * TICK_MS });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Starts counting; the returned function gives CPU ms by kind since then (processes that ended meanwhile are not counted). */
export function cpuSince(): () => Record<string, number> {
  const before = snapshot();
  return () => {
    const out: Record<string, number> = {};
    for (const [pid, now] of snapshot()) {
      const was = before.get(pid)?.ms ?? 0;
      out[now.kind] = (out[now.kind] ?? 0) + now.ms - was;
    }
    return out;
  };
}
