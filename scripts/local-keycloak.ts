// A private Keycloak for tests, the benchmark and the lead's operator tests: the distribution from
// Maven Central (the machine's `mvn`), unpacked once into the per-user cache, then one instance per
// run in `start-dev` on free loopback ports with its own data folder, the test realm imported
// from test/keycloak/. Never the machine's Keycloak; `npm start` never starts one.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './dev-server';
import { startProcess, waitFor } from './local-services';
import { processes } from './process-cpu';
import { userCacheDir } from './temporal-cli';

export const KEYCLOAK_VERSION = '26.7.3';
const ARTIFACT = `org.keycloak:keycloak-quarkus-dist:${KEYCLOAK_VERSION}:tar.gz`;
export const TEST_REALM = 'cordon-test';
export const REALM_FILE = resolve(__dirname, '..', 'test', 'keycloak', `realm-${TEST_REALM}.json`);
/** Cordon's least-privilege admin client in the test realm (see the README's provider section). */
export const ADMIN_CLIENT_ID = 'cordon-admin';
/** Roles the fixtures treat as high risk (CORDON_KEYCLOAK_HIGH_RISK_ROLES). */
export const TEST_HIGH_RISK_ROLES = ['realm-role:payments-admin', 'client-role:test-app:exports'];

/** The operators of the test realm (issue #9), with their known test passwords and realm roles. */
export const TEST_OPERATORS = {
  ann: { password: 'ann-Cordon-test-1', roles: ['cordon-responder'] },
  bob: { password: 'bob-Cordon-test-1', roles: ['cordon-responder'] },
  cleo: { password: 'cleo-Cordon-test-1', roles: ['cordon-lead'] },
  dan: { password: 'dan-Cordon-test-1', roles: ['cordon-lead'] },
  eve: { password: 'eve-Cordon-test-1', roles: [] },
} as const;
export type TestOperator = keyof typeof TEST_OPERATORS;

// Build-time options: Keycloak re-augments itself (about 15 s) whenever they change, so every
// instance passes the same ones and the first start after unpacking does it once, under a lock.
const BUILD_OPTIONS = ['--health-enabled=true'];
/**
 * The Shared Signals flavour (issue #13): Keycloak's experimental SSF transmitter, in a copy of
 * the distribution of its own, so the plain build shared by every other test is never re-augmented.
 */
const SSF_BUILD_OPTIONS = [...BUILD_OPTIONS, '--features=ssf'];
// Cordon's receiver runs on loopback over http: Keycloak refuses such push targets unless told.
const SSF_RUNTIME_OPTIONS = ['--spi-ssf-transmitter--default--allow-insecure-push-targets=true'];

export interface LocalKeycloak {
  /** Base URL, as CORDON_KEYCLOAK_URL. */
  url: string;
  realm: string;
  /** `http://127.0.0.1:PORT/realms/cordon-test`: the `iss` of the realm's tokens. */
  issuer: string;
  /** Cordon's admin client (least privilege), as CORDON_KEYCLOAK_CLIENT_ID/SECRET. */
  admin: { clientId: string; secret: string };
  /** A full-power client in the master realm, for test fixtures only. */
  setup: { clientId: string; secret: string };
  /** The test realm's other confidential clients: signal intake (issue #9) and a resource server that introspects. */
  intake: { clientId: string; secret: string };
  introspector: { clientId: string; secret: string };
  startedInMs: number;
  /** Resident and peak memory of the Keycloak JVM now, in bytes. */
  memory(): { rss: number; peak: number };
  /** The environment test files get (test/run.ts passes it on). */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

const secret = () => randomBytes(18).toString('base64url');
const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;

/** Java's feature version (17, 21, …), or undefined without Java. */
function javaVersion(): number | undefined {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  const m = /version "(\d+)/.exec(`${r.stderr}${r.stdout}`);
  return r.status === 0 && m ? Number(m[1]) : undefined;
}

const distDir = () => join(userCacheDir(), `keycloak-${KEYCLOAK_VERSION}`);
const kcSh = (dist: string) => join(dist, 'bin', 'kc.sh');

/** What this machine lacks to run Keycloak; empty when it can. */
export function keycloakMissing(): string[] {
  const missing: string[] = [];
  const java = javaVersion();
  if (java === undefined || java < 17) missing.push(java === undefined ? 'java (17 or later)' : `java 17 or later (found ${java})`);
  if (!existsSync(kcSh(distDir())) && !which('mvn')) missing.push('mvn (to fetch Keycloak from Maven Central)');
  return missing;
}

/** A lock directory holding the owner's pid; a lock whose owner died is taken over. */
async function withLock<T>(dir: string, fn: () => Promise<T>, waitMs = 15 * 60_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(join(dir, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
      let alive = false;
      try {
        alive = owner > 0 && (process.kill(owner, 0), true);
      } catch {
        alive = false;
      }
      if (!alive) rmSync(dir, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`keycloak: ${dir} is still locked by pid ${owner}`);
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fetches the distribution with Maven (checksums enforced) and unpacks it into the cache. */
function install(dist: string): void {
  if (!which('mvn')) throw new Error('keycloak: mvn not found (Debian package "maven"): it fetches Keycloak from Maven Central');
  const work = mkdtempSync(join(userCacheDir(), `.keycloak-${KEYCLOAK_VERSION}-`));
  try {
    console.log(`cordon: fetching ${ARTIFACT} from Maven Central (once; kept in ${dist})`);
    const get = spawnSync('mvn', ['-B', '-q', '-C', 'dependency:copy', `-Dartifact=${ARTIFACT}`, `-DoutputDirectory=${work}`], { encoding: 'utf8' });
    const tarball = join(work, `keycloak-quarkus-dist-${KEYCLOAK_VERSION}.tar.gz`);
    if (get.status !== 0 || !existsSync(tarball)) throw new Error(`keycloak: mvn dependency:copy ${ARTIFACT} failed: ${(get.stdout + get.stderr).trim().slice(-2000)}`);
    const untar = spawnSync('tar', ['-xzf', tarball, '-C', work], { encoding: 'utf8' });
    if (untar.status !== 0) throw new Error(`keycloak: unpacking ${tarball} failed: ${untar.stderr}`);
    rmSync(tarball);
    renameSync(join(work, `keycloak-${KEYCLOAK_VERSION}`), dist); // whole or absent, never half
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** An instance folder: the shared distribution linked in, its own data (database, import). */
function instanceHome(dist: string): string {
  const home = mkdtempSync(join(tmpdir(), 'cordon-keycloak-'));
  for (const d of readdirSync(dist)) if (d !== 'data') symlinkSync(join(dist, d), join(home, d));
  mkdirSync(join(home, 'data', 'import'), { recursive: true });
  copyFileSync(REALM_FILE, join(home, 'data', 'import', `realm-${TEST_REALM}.json`));
  return home;
}

/** The JVM's pid: kc.sh runs it as its child, or becomes it after re-augmenting. */
function javaPid(group: number): number | undefined {
  return processes().find((p) => p.comm === 'java' && p.group === group)?.pid;
}

function memoryOf(pid: number | undefined): { rss: number; peak: number } {
  if (!pid) return { rss: 0, peak: 0 };
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/** Starts a private Keycloak with the test realm; stopping it removes its folder. */
export async function startKeycloak(o: { sharedSignals?: boolean } = {}): Promise<LocalKeycloak> {
  const missing = keycloakMissing();
  if (missing.length) throw new Error(`keycloak: cannot run Keycloak here: ${missing.join(', ')} not installed (Debian: apt-get install openjdk-17-jre-headless maven)`);
  mkdirSync(userCacheDir(), { recursive: true });
  const dist = o.sharedSignals ? `${distDir()}-ssf` : distDir();
  const build = o.sharedSignals ? SSF_BUILD_OPTIONS : BUILD_OPTIONS;
  const run = o.sharedSignals ? SSF_RUNTIME_OPTIONS : [];
  const lock = `${dist}.lock`;
  const marker = join(dist, '.cordon-build-options');
  const built = () => existsSync(marker) && readFileSync(marker, 'utf8') === build.join(' ');
  if (built()) return launch(dist, build, run);
  // First use: unpack, then let the first start re-augment, with nobody else doing the same.
  return withLock(lock, async () => {
    if (!existsSync(kcSh(dist))) {
      if (o.sharedSignals) await withLock(`${distDir()}.lock`, async () => (existsSync(kcSh(distDir())) ? copyDist(distDir(), dist) : install(dist)));
      else install(dist);
    }
    if (built()) return launch(dist, build, run);
    const kc = await launch(dist, build, run);
    writeFileSync(marker, build.join(' '));
    return kc;
  });
}

/** A whole copy of an unpacked distribution (never half: copied aside, then renamed). */
function copyDist(from: string, to: string): void {
  const work = mkdtempSync(join(userCacheDir(), '.keycloak-copy-'));
  try {
    cpSync(from, join(work, 'dist'), { recursive: true, verbatimSymlinks: true });
    rmSync(join(work, 'dist', '.cordon-build-options'), { force: true });
    renameSync(join(work, 'dist'), to);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function launch(dist: string, build: string[], run: string[]): Promise<LocalKeycloak> {
  const t0 = Date.now();
  const home = instanceHome(dist);
  const [port, managementPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const s = { admin: secret(), setup: secret(), setupPassword: secret(), intake: secret(), introspect: secret() };
  const env = {
    ...process.env,
    KC_BOOTSTRAP_ADMIN_USERNAME: 'admin',
    KC_BOOTSTRAP_ADMIN_PASSWORD: s.setupPassword,
    KC_BOOTSTRAP_ADMIN_CLIENT_ID: 'cordon-setup',
    KC_BOOTSTRAP_ADMIN_CLIENT_SECRET: s.setup,
    // The realm file names these placeholders; no secret is written into the repository.
    CORDON_KC_ADMIN_SECRET: s.admin,
    CORDON_KC_INTAKE_SECRET: s.intake,
    CORDON_KC_INTROSPECT_SECRET: s.introspect,
  };
  const server = startProcess(
    'sh',
    [
      kcSh(dist),
      `-Dkc.home.dir=${home}`, // a later -D wins: data and import live in the instance's folder
      'start-dev',
      ...build,
      ...run,
      '--import-realm',
      '--http-host=127.0.0.1',
      `--http-port=${port}`,
      '--http-management-host=127.0.0.1',
      `--http-management-port=${managementPort}`,
      `--hostname=${url}`, // a fixed issuer, whatever address a client uses
    ],
    'keycloak',
    'SIGTERM',
    { env, log: join(home, 'keycloak.log') },
  );
  const stop = async () => {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  };
  try {
    // Ready means the realm is imported too; a first start re-augments (~15 s more).
    await waitFor(
      'keycloak',
      server.exited,
      async () => {
        const ready = await fetch(`http://127.0.0.1:${managementPort}/health/ready`, { signal: AbortSignal.timeout(2000) });
        if (!ready.ok) throw new Error(`health ${ready.status}`);
        const realm = await fetch(`${url}/realms/${TEST_REALM}`, { signal: AbortSignal.timeout(2000) });
        if (!realm.ok) throw new Error(`realm ${realm.status}`);
      },
      180_000,
      250,
    );
  } catch (err) {
    await stop(); // never leave a JVM behind
    throw err;
  }
  const issuer = `${url}/realms/${TEST_REALM}`;
  const kc: LocalKeycloak = {
    url,
    realm: TEST_REALM,
    issuer,
    admin: { clientId: ADMIN_CLIENT_ID, secret: s.admin },
    setup: { clientId: 'cordon-setup', secret: s.setup },
    intake: { clientId: 'cordon-intake', secret: s.intake },
    introspector: { clientId: 'test-api', secret: s.introspect },
    startedInMs: Date.now() - t0,
    memory: () => memoryOf(javaPid(server.pid)),
    env: () => ({
      CORDON_KEYCLOAK_URL: url,
      CORDON_KEYCLOAK_REALM: TEST_REALM,
      CORDON_KEYCLOAK_CLIENT_ID: ADMIN_CLIENT_ID,
      CORDON_KEYCLOAK_CLIENT_SECRET: s.admin,
      CORDON_KEYCLOAK_HIGH_RISK_ROLES: TEST_HIGH_RISK_ROLES.join(','),
      CORDON_TEST_KEYCLOAK_ISSUER: issuer,
      CORDON_TEST_KEYCLOAK_SETUP_CLIENT_ID: 'cordon-setup',
      CORDON_TEST_KEYCLOAK_SETUP_SECRET: s.setup,
      CORDON_TEST_KEYCLOAK_INTAKE_SECRET: s.intake,
      CORDON_TEST_KEYCLOAK_INTROSPECT_SECRET: s.introspect,
    }),
    stop,
  };
  return kc;
}
