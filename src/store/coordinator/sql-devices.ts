import { z } from 'zod';
import { parsedJsonObject, versionsSchema } from './schemas.js';
import { bool, checkLimit, chunks, decodeCursor, int, intOrNull, json, jsonText, marks, parseRow, toPage, type SqlDriver, type SqlValue } from './sql-driver.js';
import type { CoordinatorStore, Device, DeviceFilter, DeviceStatus } from './types.js';

const deviceRow = z.object({
  id: z.string(),
  online: bool,
  profile: z.string().nullable(),
  state: z.string().nullable(),
  versions: jsonText(versionsSchema),
  capacity: jsonText(parsedJsonObject),
  last_seen: int,
  telemetry: jsonText(parsedJsonObject).nullable(),
  telemetry_at: intOrNull,
});

const idRow = z.object({ id: z.string() });
const groupRow = z.object({ device_id: z.string(), group_name: z.string() });
const countRow = z.object({ n: int });

const COLUMNS = 'id, online, profile, state, versions, capacity, last_seen, telemetry, telemetry_at';

function toDevice(row: Record<string, unknown>, groups: string[]): Device {
  const r = parseRow(deviceRow, row, 'devices');
  return {
    id: r.id, online: r.online, profile: r.profile, groups, versions: r.versions, capacity: r.capacity,
    state: r.state, lastSeen: r.last_seen, telemetry: r.telemetry, telemetryAt: r.telemetry_at,
  };
}

/** WHERE clause (without the keyword) and its parameters for a device filter. */
function where(filter: DeviceFilter): { sql: string[]; params: SqlValue[] } {
  const sql: string[] = [];
  const params: SqlValue[] = [];
  if (filter.profile !== undefined) (sql.push('d.profile = ?'), params.push(filter.profile));
  if (filter.online !== undefined) (sql.push('d.online = ?'), params.push(filter.online));
  if (filter.state !== undefined) (sql.push('d.state = ?'), params.push(filter.state));
  if (filter.group !== undefined) {
    sql.push('EXISTS (SELECT 1 FROM device_groups g WHERE g.device_id = d.id AND g.group_name = ?)');
    params.push(filter.group);
  }
  return { sql, params };
}

/** The latest status per id: PostgreSQL refuses to upsert one row twice in a statement. */
function latestPerId(statuses: readonly DeviceStatus[]): DeviceStatus[] {
  const byId = new Map<string, DeviceStatus>();
  for (const s of statuses) {
    const prev = byId.get(s.id);
    if (!prev || s.lastSeen >= prev.lastSeen) byId.set(s.id, s);
  }
  return [...byId.values()];
}

type DeviceOps = Pick<CoordinatorStore, 'upsertDevices' | 'markOffline' | 'recordTelemetry' | 'getDevice' | 'listDevices' | 'listDeviceIds' | 'countDevices'>;

export function createDeviceOps(db: SqlDriver): DeviceOps {
  async function groupsOf(q: SqlDriver, ids: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>(ids.map((id) => [id, []]));
    for (const part of chunks(ids, 900)) {
      const rows = await q.query(
        `SELECT device_id, group_name FROM device_groups WHERE device_id IN ${marks(part.length)} ORDER BY device_id, group_name`,
        part,
      );
      for (const row of rows) {
        const r = parseRow(groupRow, row, 'device_groups');
        out.get(r.device_id)?.push(r.group_name);
      }
    }
    return out;
  }

  /** One keyset page (limit + 1 rows, so toPage sees whether more follow) of `columns`, ordered by id. */
  async function selectPage(columns: string, filter: DeviceFilter, page: { limit: number; cursor?: string | null }): Promise<{ limit: number; rows: Record<string, unknown>[] }> {
    const limit = checkLimit(page.limit);
    const w = where(filter);
    const after = decodeCursor(page.cursor);
    if (after !== null) (w.sql.push('d.id > ?'), w.params.push(after));
    const rows = await db.query(`SELECT ${columns} FROM devices d ${w.sql.length ? `WHERE ${w.sql.join(' AND ')}` : ''} ORDER BY d.id LIMIT ?`, [...w.params, limit + 1]);
    return { limit, rows };
  }

  return {
    async upsertDevices(statuses) {
      const latest = latestPerId(statuses);
      if (latest.length === 0) return [];
      return db.transaction(async (tx) => {
        const applied: string[] = [];
        for (const part of chunks(latest, 300)) {
          const params = part.flatMap((s): SqlValue[] => [s.id, s.online, s.profile, s.state, json(s.versions), json(s.capacity), s.lastSeen]);
          const rows = await tx.query(
            `INSERT INTO devices (id, online, profile, state, versions, capacity, last_seen)
             VALUES ${part.map(() => marks(7)).join(', ')}
             ON CONFLICT (id) DO UPDATE SET online = excluded.online, profile = excluded.profile, state = excluded.state,
               versions = excluded.versions, capacity = excluded.capacity, last_seen = excluded.last_seen
             WHERE excluded.last_seen >= devices.last_seen
             RETURNING id`,
            params,
          );
          const ids = rows.map((r) => parseRow(idRow, r, 'devices').id);
          applied.push(...ids);
          if (ids.length === 0) continue;
          await tx.query(`DELETE FROM device_groups WHERE device_id IN ${marks(ids.length)}`, ids);
          const byId = new Map(part.map((s) => [s.id, s]));
          const pairs = ids.flatMap((id) => [...new Set(byId.get(id)!.groups)].map((g): [string, string] => [id, g]));
          for (const gpart of chunks(pairs, 400)) {
            await tx.query(`INSERT INTO device_groups (device_id, group_name) VALUES ${gpart.map(() => marks(2)).join(', ')}`, gpart.flat());
          }
        }
        return applied;
      });
    },

    async markOffline(deviceId, at) {
      const rows = await db.query('UPDATE devices SET online = ?, last_seen = ? WHERE id = ? AND last_seen <= ? RETURNING id', [false, at, deviceId, at]);
      return rows.length === 1;
    },

    async recordTelemetry(deviceId, telemetry, at) {
      const rows = await db.query(
        'UPDATE devices SET telemetry = ?, telemetry_at = ? WHERE id = ? AND (telemetry_at IS NULL OR telemetry_at < ?) RETURNING id',
        [json(telemetry), at, deviceId, at],
      );
      return rows.length === 1;
    },

    async getDevice(deviceId) {
      const [row] = await db.query(`SELECT ${COLUMNS} FROM devices d WHERE id = ?`, [deviceId]);
      if (!row) return null;
      return toDevice(row, (await groupsOf(db, [deviceId])).get(deviceId) ?? []);
    },

    async listDevices(filter, page) {
      const { limit, rows } = await selectPage(COLUMNS, filter, page);
      const ids = rows.map((r) => String(r.id));
      const groups = await groupsOf(db, ids.slice(0, limit));
      const devices = rows.map((r, i) => toDevice(r, groups.get(ids[i]!) ?? []));
      return toPage(devices, limit, (d) => d.id);
    },

    async listDeviceIds(filter, page) {
      const { limit, rows } = await selectPage('d.id', filter, page);
      return toPage(rows.map((r) => parseRow(idRow, r, 'devices').id), limit, (id) => id);
    },

    async countDevices(filter) {
      const w = where(filter);
      const [row] = await db.query(`SELECT COUNT(*) AS n FROM devices d ${w.sql.length ? `WHERE ${w.sql.join(' AND ')}` : ''}`, w.params);
      return parseRow(countRow, row, 'devices').n;
    },
  };
}
