// How `npm start` keeps its worker and HTTP API from outliving it. Each child gets an IPC channel
// to the stack; the operating system closes it when the stack dies, however it dies. A stack
// killed with SIGKILL records each child's pid only once spawn() has returned, so a child born
// in that instant is known to nobody: it must notice by itself that it is alone.
import type { StdioOptions } from 'node:child_process';

/** The children's stdio: the terminal's, plus the channel they watch. */
export const STACK_CHILD_STDIO: StdioOptions = ['inherit', 'inherit', 'inherit', 'ipc'];

/**
 * In a child of the stack, stops this process through its own SIGTERM path (the worker drains,
 * the API closes) once the stack is gone. Started any other way (`npm run worker`), it does nothing.
 */
export function stopWithStack(what: string): void {
  if (!process.send) return; // no channel: not started by the stack
  const stop = () => {
    console.error(`${what}: the stack that started it is gone: stopping`);
    process.kill(process.pid, 'SIGTERM');
  };
  // Gone already, before this process got here: the channel closed during start-up.
  if (!process.connected) return stop();
  process.once('disconnect', stop);
  process.channel?.unref(); // the channel alone keeps nothing running
}
