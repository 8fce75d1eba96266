// Messages beside the workflow: operators steer by signal (CLI, UI) or by validated update
// (the client library, which gets a clear rejection). Both carry the same OperatorCommand.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ContainmentState, IdentitySignal, OperatorCommand, Status } from './schemas';

export const identitySignal = defineSignal<[IdentitySignal]>('identitySignal');
export const commandSignal = defineSignal<[OperatorCommand]>('command');
export const commandUpdate = defineUpdate<{ status: Status; accepted: string }, [OperatorCommand]>('command');
export const stateQuery = defineQuery<ContainmentState>('state');
