// Cordon's Prometheus series names, shared by the workflow, the activities and the worker's exporter.
export const TIME_TO_SUPPRESS = 'cordon_time_to_suppress_ms';
export const ACTIONS = 'cordon_actions';
export const PROVIDER_CALL = 'cordon_provider_call_ms';
