import { systemClock, type Clock } from '../../core/clock.js';
import { createDeviceOps } from './sql-devices.js';
import type { SqlDriver } from './sql-driver.js';
import { createFederatedOps } from './sql-federated.js';
import { createResultOps } from './sql-results.js';
import { createRolloutOps } from './sql-rollouts.js';
import type { CoordinatorStore } from './types.js';

export interface CoordinatorStoreOptions {
  /** Time for leases, createdAt/updatedAt and recordedAt; event times (lastSeen, update `at`) come from the caller. */
  clock?: Clock;
}

/** The one implementation of CoordinatorStore, over either backend's driver (the driver must be migrated). */
export function createSqlCoordinatorStore(db: SqlDriver, options: CoordinatorStoreOptions = {}): CoordinatorStore {
  const clock = options.clock ?? systemClock;
  return {
    ...createDeviceOps(db),
    ...createRolloutOps(db, clock),
    ...createResultOps(db, clock),
    ...createFederatedOps(db, clock),
    close: () => db.close(),
  };
}
