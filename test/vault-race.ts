// A second process for the vault race in state-stores.test.ts: says "ready", waits for a line on
// stdin (so both twins start at the same moment), issues the same keys on the same data folder,
// and prints the fingerprints it got.
import { LocalVault } from '../activities/secret-sink';

async function main(): Promise<void> {
  const [dir, count] = process.argv.slice(2);
  const vault = new LocalVault(dir!);
  const keys = Array.from({ length: Number(count) }, (_, i) => `race/${i}`);
  process.stdout.write('ready\n');
  await new Promise((go) => process.stdin.once('data', go));
  const got = await Promise.all(keys.map(async (k) => [k, (await vault.issue(k, { provider: 'lab', identityId: k, kind: 'service-account' })).ref.fingerprint]));
  process.stdout.write(`${JSON.stringify(Object.fromEntries(got))}\n`);
  process.stdin.destroy();
}

main().catch((err) => {
  console.error((err as Error).stack);
  process.exit(1);
});
