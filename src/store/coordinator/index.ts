export type * from './types.js';
export { jobErrorSchema, jsonObject, rolloutSpecSchema, rolloutStateSchema, ROLLOUT_STATES } from './schemas.js';
export { createSqliteCoordinatorStore } from './sqlite.js';
export { createPostgresCoordinatorStore } from './postgres.js';
export type { CoordinatorStoreOptions } from './sql-store.js';
