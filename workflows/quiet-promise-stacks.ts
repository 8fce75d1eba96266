// Preloaded into each workflow thread unless CORDON_WORKFLOW_STACK_TRACES=true (workers/worker.ts).
// The SDK's promise hook builds a source-mapped stack trace for every promise workflow code
// creates, so that the `__stack_trace` query (the Temporal UI's Stack Trace tab) can say where a
// workflow waits; it has no switch, and it cost 13-24% of the worker's CPU per containment
// (README, "Performance"). Node asks an error's own realm for `Error.prepareStackTrace`
// before the worker thread's, where the SDK formats and records those stacks: with one set here,
// the hook gets an empty stack back and records nothing. It must be set before the SDK freezes
// the realm's globals, which happens right after preloading.
//
// Errors that workflow code throws keep V8's own format, in the bundle's coordinates (function
// names, not source-mapped lines).

/** The frame the SDK's hook (`init` in vm-shared.js) creates its error in. */
const fromPromiseHook = (frame: NodeJS.CallSite | undefined): boolean =>
  frame?.getFunctionName() === 'init' && (frame.getFileName() ?? '').endsWith('vm-shared.js');

function header(error: unknown): string {
  try {
    return Error.prototype.toString.call(error);
  } catch {
    return 'Error';
  }
}

Error.prepareStackTrace = (error, frames) =>
  fromPromiseHook(frames[0]) ? '' : header(error) + frames.map((f) => `\n    at ${String(f)}`).join('');

// A module, not a script, so its names stay its own; the preload needs nothing from it.
export {};
