// A second worker process for the bench's scale phase on the cluster: the same Cordon worker as
// workers/main.ts, serving the scale phase's sharded lab (CORDON_BENCH_LAB_DIR, _SHARDS), which
// the in-process worker serves too; the lab's lock files let both processes write it.
import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { loadConfig } from '../activities/config';
import { temporalTarget } from '../client/connection';
import { createCordonWorker } from '../workers/worker';
import { ShardedLab } from './bench-providers';

async function main(): Promise<void> {
  const config = loadConfig();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const dir = process.env.CORDON_BENCH_LAB_DIR;
  const shards = Number(process.env.CORDON_BENCH_LAB_SHARDS);
  if (!dir || !shards) throw new Error('CORDON_BENCH_LAB_DIR and CORDON_BENCH_LAB_SHARDS are set by the bench');
  const target = temporalTarget();
  const connection = await NativeConnection.connect(target.connectionOptions);
  const { worker, close } = await createCordonWorker({ connection, namespace: target.namespace, config, providers: new Map([['lab', new ShardedLab(dir, shards)]]), shutdownGraceTime: '1s' });
  console.log(`cordon worker: bench worker on ${target.address} taskQueue=${config.taskQueue}`); // WorkerProcess waits for this line
  // The bench leads this process; if the bench dies without stopping it (a crash skips its exit
  // hooks), this worker must not keep polling on its own.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && worker.shutdown(), 2000).unref();
  try {
    await worker.run();
  } finally {
    await close();
    await connection.close();
  }
}

main().catch((err) => {
  console.error(`cordon bench worker: ${(err as Error).message}`);
  process.exit(1);
});
