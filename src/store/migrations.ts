import type { Migration } from './sqlite.js';

/**
 * The store's schema, oldest first. Append, never edit: a device in the field may hold any prefix of
 * this list. Another module that needs tables appends its own numbered step (or passes
 * `[...STORE_MIGRATIONS, ...its own]` to openDatabase).
 */
export const STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'outbox',
    up(db) {
      db.exec(`
        CREATE TABLE outbox (
          id           INTEGER PRIMARY KEY AUTOINCREMENT,
          key          TEXT    NOT NULL UNIQUE,
          topic        TEXT    NOT NULL,
          payload      BLOB    NOT NULL,
          is_text      INTEGER NOT NULL CHECK (is_text IN (0, 1)),
          qos          INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
          retain       INTEGER NOT NULL CHECK (retain IN (0, 1)),
          created_at   INTEGER NOT NULL,
          delivered_at INTEGER
        );
        CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
        CREATE INDEX outbox_delivered ON outbox (id) WHERE delivered_at IS NOT NULL;
      `);
    },
  },
  {
    version: 2,
    name: 'jobs',
    up(db) {
      db.exec(`
        CREATE TABLE jobs (
          job_id           TEXT    PRIMARY KEY,
          state            TEXT    NOT NULL,
          seq              INTEGER NOT NULL,
          progress_seq     INTEGER NOT NULL DEFAULT 0,
          spec             TEXT    NOT NULL,
          manifest         TEXT    NOT NULL,
          error            TEXT,
          progress         TEXT,
          result           TEXT,
          paused_reason    TEXT,
          progress_sent_at INTEGER,
          created_at       INTEGER NOT NULL,
          updated_at       INTEGER NOT NULL
        );
        CREATE INDEX jobs_state ON jobs (state);
        CREATE INDEX jobs_created ON jobs (created_at);
      `);
    },
  },
  {
    version: 3,
    name: 'block-ledger',
    up(db) {
      db.exec(`
        CREATE TABLE transfer_blocks (
          transfer_key TEXT    PRIMARY KEY,
          total_blocks INTEGER NOT NULL CHECK (total_blocks >= 0),
          bitmap       BLOB    NOT NULL
        );
      `);
    },
  },
  {
    version: 4,
    name: 'checkpoints',
    up(db) {
      db.exec(`
        CREATE TABLE checkpoints (
          run_id     TEXT    NOT NULL,
          stage      TEXT    NOT NULL,
          meta       TEXT    NOT NULL,
          model_json TEXT,
          weights    BLOB,
          PRIMARY KEY (run_id, stage),
          CHECK ((model_json IS NULL) = (weights IS NULL))
        );
      `);
    },
  },
  {
    version: 5,
    name: 'artifact-versions',
    up(db) {
      db.exec(`
        CREATE TABLE artifact_versions (
          name        TEXT    PRIMARY KEY,
          version     INTEGER NOT NULL,
          job_id      TEXT,
          accepted_at INTEGER NOT NULL
        );
      `);
    },
  },
  {
    version: 6,
    name: 'round-answers',
    up(db) {
      db.exec(`
        CREATE TABLE round_answers (
          round_id    TEXT    PRIMARY KEY,
          run_key     TEXT    NOT NULL,
          round       INTEGER NOT NULL,
          outcome     TEXT    NOT NULL CHECK (outcome IN ('update', 'failed')),
          file        TEXT,
          sha256      TEXT,
          size        INTEGER,
          answered_at INTEGER NOT NULL
        );
        CREATE INDEX round_answers_run ON round_answers (run_key, round);
      `);
    },
  },
];
