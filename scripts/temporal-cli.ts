// Makes a `temporal` CLI (the real dev server) available and says where it came from.
// Order: TEMPORAL_CLI_PATH → `temporal` on PATH → the repo's ignored .cordon/bin → the per-user
// cache (~/.cache/cordon, kept across fresh clones) → a fresh `go install` into that cache →
// the SDK's own download (needs internet). Run directly, it prints the path and the source.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { Progress } from './measure';

/** v1.6.0 and later carry a `replace` directive in go.mod, which `go install module@version` refuses. */
export const CLI_VERSION = 'v1.5.1';
const MODULE = `github.com/temporalio/cli/cmd/temporal@${CLI_VERSION}`;
const REPO_ROOT = resolve(__dirname, '..');
export const REPO_BIN = join(REPO_ROOT, '.cordon', 'bin', 'temporal');

export type CliSource = 'TEMPORAL_CLI_PATH' | 'PATH' | 'repo' | 'user-cache' | 'go-build' | 'sdk-download';
export type ResolvedCli = { source: CliSource; path?: string };

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The per-user cache kept across fresh clones (built tools, downloaded distributions). */
export function userCacheDir(): string {
  return process.env.CORDON_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cordon');
}

export function userCacheBinary(): string {
  return join(userCacheDir(), `temporal-cli-${CLI_VERSION}`, 'temporal');
}

function onPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'temporal');
    if (dir && executable(candidate)) return candidate;
  }
  return undefined;
}

/** Go ≥ 1.25 is what the CLI's go.mod asks for. */
export function goVersionOk(): boolean {
  try {
    const v = execFileSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' }).trim(); // e.g. go1.26.8
    const m = /^go(\d+)\.(\d+)/.exec(v);
    return !!m && (Number(m[1]) > 1 || Number(m[2]) >= 25);
  } catch {
    return false;
  }
}

function linkIntoRepo(target: string): void {
  mkdirSync(join(REPO_ROOT, '.cordon', 'bin'), { recursive: true });
  rmSync(REPO_BIN, { force: true });
  symlinkSync(target, REPO_BIN);
}

/** Builds the CLI into the user cache with `go install`, printing progress to stderr. */
export async function buildWithGo(dest = userCacheBinary()): Promise<string> {
  const gobin = resolve(dest, '..');
  mkdirSync(gobin, { recursive: true });
  const started = Date.now();
  process.stderr.write(`cordon: building the temporal CLI ${CLI_VERSION} with go install (first time only; minutes on 2 cores)\n`);
  await new Promise<void>((ok, fail) => {
    const child = spawn('go', ['install', '-v', MODULE], { env: { ...process.env, GOBIN: gobin }, stdio: ['ignore', 'ignore', 'pipe'] });
    let packages = 0;
    let tail = '';
    const progress = new Progress(process.stderr, { heartbeatMs: 30_000 });
    const tick = () => progress.tick('  go install', `${packages} steps, ${Math.round((Date.now() - started) / 1000)}s`);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-4000);
      packages += chunk.split('\n').filter(Boolean).length;
      tick();
    });
    // A quiet stretch (linking) still shows the build is alive.
    const ticker = setInterval(tick, 5_000);
    child.on('error', fail);
    child.on('exit', (code) => {
      clearInterval(ticker);
      progress.end();
      if (code === 0) return ok();
      const hint = /checksum database|sum\.golang/.test(tail) ? '\n(the Go checksum database could not be reached: retry with GOSUMDB=off for this command only)' : '';
      fail(new Error(`go install ${MODULE} failed (exit ${code}):\n${tail}${hint}`));
    });
  });
  process.stderr.write(`\ncordon: built ${dest} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  return dest;
}

/** Finds or builds the CLI. `{ source: 'sdk-download' }` means: let the SDK download it. */
export async function resolveTemporalCli(options: { build?: boolean } = {}): Promise<ResolvedCli> {
  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (!executable(fromEnv)) throw new Error(`TEMPORAL_CLI_PATH=${fromEnv} is not an executable file`);
    return { source: 'TEMPORAL_CLI_PATH', path: fromEnv };
  }
  const pathCli = onPath();
  if (pathCli) return { source: 'PATH', path: pathCli };
  if (executable(REPO_BIN)) return { source: 'repo', path: REPO_BIN };
  const cached = userCacheBinary();
  if (executable(cached)) {
    linkIntoRepo(cached);
    return { source: 'user-cache', path: REPO_BIN };
  }
  if (options.build !== false && goVersionOk()) {
    linkIntoRepo(await buildWithGo(cached));
    return { source: 'go-build', path: REPO_BIN };
  }
  return { source: 'sdk-download' };
}

if (require.main === module) {
  const t0 = process.hrtime.bigint();
  resolveTemporalCli()
    .then((r) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      console.log(r.path ? `${r.path} (source: ${r.source}, ${ms.toFixed(0)} ms)` : 'no local temporal CLI and no Go >= 1.25: the SDK will download the dev server (needs internet)');
      if (r.path && existsSync(r.path)) console.log(execFileSync(r.path, ['--version'], { encoding: 'utf8' }).trim());
    })
    .catch((err: Error) => {
      console.error(`cordon: ${err.message}`);
      process.exit(1);
    });
}
