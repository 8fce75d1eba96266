// The workflow bundle's entry point: every workflow type the worker registers.
export { containment } from './containment';
export { engineFloor } from './engine-floor';
export { sharedSignalReceipt } from './ssf-receipt';
