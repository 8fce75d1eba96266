// What /proc says about this host's processes: each one's name, process group and CPU time, and
// from them the CPU time by the kind of process that spent it (the bench's "where the cores
// went": the engine, this process's worker and client, the provider's server). By process name,
// host-wide: on the cluster the server's own PostgreSQL counts as postgres. Linux only; elsewhere empty.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux
const KINDS: [RegExp, string][] = [
  [/^temporal/, 'engine'],
  [/^java$/, 'keycloak'],
  [/^redis-server$/, 'redis'],
  [/^postgres$/, 'postgres'],
];

export interface ProcessStat {
  pid: number;
  /** The executable's name as the kernel keeps it (15 characters at most). */
  comm: string;
  group: number;
  cpuMs: number;
}

/** Every process this user can see, read from /proc/<pid>/stat (processes gone meanwhile are skipped). */
export function processes(): ProcessStat[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  return pids.flatMap((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // The name sits in parentheses and may hold spaces or parentheses itself: fields follow the last ')'.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return [{ pid: Number(p), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), group: Number(f[2]), cpuMs: (Number(f[11]) + Number(f[12])) * TICK_MS }];
    } catch {
      return [];
    }
  });
}

function snapshot(): Map<number, { kind: string; ms: number }> {
  const out = new Map<number, { kind: string; ms: number }>();
  for (const p of processes()) {
    const kind = p.pid === process.pid ? 'bench' : KINDS.find(([re]) => re.test(p.comm))?.[1];
    if (kind) out.set(p.pid, { kind, ms: p.cpuMs });
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
