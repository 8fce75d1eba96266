// Messages beside the workflow. Operators steer by validated update (the client library and CLI,
// which get the verdict) or by signal (the Temporal UI, `temporal workflow signal`); both carry the
// same OperatorCommand, are verified on the worker, and a refused one is recorded either way.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Policy } from './policy';
import type { ContainmentState, IdentitySignal, OperatorCommand, Status } from './schemas';

export const identitySignal = defineSignal<[IdentitySignal]>('identitySignal');
export const commandSignal = defineSignal<[OperatorCommand]>('command');
export const commandUpdate = defineUpdate<{ status: Status; accepted: string; by: string }, [OperatorCommand]>('command');
export const stateQuery = defineQuery<ContainmentState>('state');
/** The approved policy the containment runs on: version, SHA-256 and every rule. */
export const policyQuery = defineQuery<{ version: string; sha256: string; policy: Policy }>('policy');

/** Shown in the UI's signal and update dialogs, so an operator sees the payload's shape. */
export const COMMAND_DESCRIPTION =
  'Operator command, verified on the worker. Payload: {"type":"advance","gate":"rotate#3","reason":"checked with the owner","token":"<sealed token from `cordon command … --print`>"}. ' +
  'type: advance | hold | resume | abort | rollback | dependencies-cleared. A command without a valid token is refused and recorded.';
export const IDENTITY_SIGNAL_DESCRIPTION =
  'A detection for this identity (joins or escalates the containment). Payload: an IdentitySignal, e.g. {"signalId":"siem-1","provider":"lab","identityId":"svc-ci","identityKind":"service-account","trigger":"secret-exposed","confidence":0.95,"riskScore":90,"assetCriticality":"high","privilegeLevel":"high","source":"siem","observedAt":"2026-11-24T10:00:00Z"}';
