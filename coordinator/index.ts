// @dpfed/coordinator: starting a coordinator from code of one's own (the `dpfed coordinator` command is
// in the dpfed package). Every module is also importable by its own path ('@dpfed/coordinator/<module>').
export { startCoordinator, type Coordinator, type CoordinatorOptions } from './coordinator-server.ts';
export { coordinatorPrivacy } from './ledger-privacy.ts';
export { Enrolment, readEnrolmentFile, type EnrolmentEntry } from './enrolment.ts';
export type { RunConfig } from './run-config.ts';
export type { Strategy, StrategyName, StrategyOptions } from './strategy.ts';
