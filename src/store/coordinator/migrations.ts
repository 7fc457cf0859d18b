/**
 * The coordinator schema, written once and typed per backend: JSON is TEXT in SQLite and JSONB in
 * PostgreSQL, times are epoch milliseconds (INTEGER / BIGINT) in both. Migration i (0-based) takes
 * the schema from version i to i + 1; append, never edit, once released.
 */
export interface SqlTypes {
  json: string;
  bool: string;
  big: string;
  serialPk: string;
}

export const SQLITE_TYPES: SqlTypes = { json: 'TEXT', bool: 'INTEGER', big: 'INTEGER', serialPk: 'INTEGER PRIMARY KEY AUTOINCREMENT' };
export const POSTGRES_TYPES: SqlTypes = { json: 'JSONB', bool: 'BOOLEAN', big: 'BIGINT', serialPk: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY' };

function v1(t: SqlTypes): string[] {
  return [
    `CREATE TABLE devices (
      id TEXT PRIMARY KEY, online ${t.bool} NOT NULL, profile TEXT, state TEXT,
      versions ${t.json} NOT NULL, capacity ${t.json} NOT NULL, last_seen ${t.big} NOT NULL,
      telemetry ${t.json}, telemetry_at ${t.big})`,
    'CREATE INDEX devices_profile ON devices (profile, id)',
    'CREATE INDEX devices_online ON devices (online, id)',
    'CREATE INDEX devices_state ON devices (state, id)',
    `CREATE TABLE device_groups (
      device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE, group_name TEXT NOT NULL,
      PRIMARY KEY (device_id, group_name))`,
    'CREATE INDEX device_groups_group ON device_groups (group_name, device_id)',
    `CREATE TABLE artifacts (
      sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, version ${t.big} NOT NULL,
      size ${t.big} NOT NULL, location TEXT NOT NULL, manifest ${t.json} NOT NULL, created_at ${t.big} NOT NULL,
      UNIQUE (name, version))`,
    `CREATE TABLE rollouts (
      id TEXT PRIMARY KEY, spec ${t.json} NOT NULL, state TEXT NOT NULL, created_at ${t.big} NOT NULL,
      updated_at ${t.big} NOT NULL, started_at ${t.big}, finished_at ${t.big})`,
    'CREATE INDEX rollouts_state ON rollouts (state)',
    `CREATE TABLE rollout_leases (
      rollout_id TEXT PRIMARY KEY REFERENCES rollouts (id) ON DELETE CASCADE, owner TEXT NOT NULL,
      fence ${t.big} NOT NULL, expires_at ${t.big} NOT NULL)`,
    `CREATE TABLE executions (
      rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE, device_id TEXT NOT NULL,
      job_id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, seq ${t.big} NOT NULL, attempts ${t.big} NOT NULL,
      progress ${t.json}, dispatched_at ${t.big} NOT NULL, updated_at ${t.big} NOT NULL, error ${t.json},
      PRIMARY KEY (rollout_id, device_id))`,
    'CREATE INDEX executions_state ON executions (rollout_id, state)',
    `CREATE TABLE results (
      n ${t.serialPk}, job_id TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL, rollout_id TEXT,
      report ${t.json} NOT NULL, student_sha256 TEXT NOT NULL, student_manifest ${t.json} NOT NULL,
      recorded_at ${t.big} NOT NULL)`,
    'CREATE INDEX results_rollout ON results (rollout_id, n)',
    'CREATE INDEX results_device ON results (device_id, n)',
    `CREATE TABLE rounds (
      id TEXT PRIMARY KEY, round_number ${t.big} NOT NULL, config ${t.json} NOT NULL, state TEXT NOT NULL,
      deadline ${t.big}, created_at ${t.big} NOT NULL, updated_at ${t.big} NOT NULL)`,
    `CREATE TABLE round_updates (
      round_id TEXT NOT NULL REFERENCES rounds (id) ON DELETE CASCADE, device_id TEXT NOT NULL,
      metadata ${t.json} NOT NULL, payload_location TEXT NOT NULL, received_at ${t.big} NOT NULL,
      PRIMARY KEY (round_id, device_id))`,
  ];
}

/** Federated runs, and rounds that belong to a run and keep their result. */
function v2(t: SqlTypes): string[] {
  return [
    `CREATE TABLE federated_runs (
      id TEXT PRIMARY KEY, spec ${t.json} NOT NULL, state TEXT NOT NULL, round_number ${t.big} NOT NULL,
      attempt ${t.big} NOT NULL, global_sha256 TEXT NOT NULL, server_state ${t.json},
      created_at ${t.big} NOT NULL, updated_at ${t.big} NOT NULL)`,
    'CREATE INDEX federated_runs_state ON federated_runs (state, id)',
    'ALTER TABLE rounds ADD COLUMN run_id TEXT',
    `ALTER TABLE rounds ADD COLUMN result ${t.json}`,
    'CREATE INDEX rounds_run ON rounds (run_id, round_number, created_at)',
  ];
}

/** Federated run leases: one coordinator drives a run's rounds at a time (the rollout lease table is keyed to rollouts). */
function v3(t: SqlTypes): string[] {
  return [
    `CREATE TABLE federated_leases (
      run_id TEXT PRIMARY KEY REFERENCES federated_runs (id) ON DELETE CASCADE, owner TEXT NOT NULL,
      fence ${t.big} NOT NULL, expires_at ${t.big} NOT NULL)`,
  ];
}

/** Each migration is a list of statements run in one transaction. */
export function migrations(t: SqlTypes): string[][] {
  return [v1(t), v2(t), v3(t)];
}
