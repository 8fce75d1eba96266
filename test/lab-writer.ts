// A writer process for lab-lock.test.ts: says "ready", waits for a line on stdin (so the writers
// start together), then appends `count` journal entries to the lab file, one update each.
import { LabDirectory } from '../activities/providers/lab';

async function main(): Promise<void> {
  const [file, count, tag] = process.argv.slice(2);
  const lab = new LabDirectory(file!);
  process.stdout.write('ready\n');
  await new Promise((go) => process.stdin.once('data', go));
  for (let i = 0; i < Number(count); i++) {
    await lab.update((s) => void s.mutations.push({ seq: s.mutations.length + 1, at: new Date().toISOString(), identity: tag!, op: 'write', detail: String(i) }));
  }
  process.stdin.destroy();
}

main().catch((err) => {
  console.error((err as Error).stack);
  process.exit(1);
});
