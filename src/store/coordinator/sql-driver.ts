import { z } from 'zod';
import { EdgektError } from '../../core/errors.js';

/**
 * The little the coordinator store needs from a SQL database. Both backends run the same SQL text
 * (`?` placeholders, `INSERT … ON CONFLICT`, `UPDATE … RETURNING`: SQLite ≥ 3.35 and PostgreSQL
 * share them), so the behaviour the contract suite checks is written once.
 */
export type SqlValue = string | number | boolean | null;
export type SqlRow = Record<string, unknown>;

export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs one statement; rows for SELECT or RETURNING, else []. JSON columns come back as text. */
  query(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]>;
  /** Runs fn in one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: one pooled client). */
  transaction<T>(fn: (tx: SqlDriver) => Promise<T>): Promise<T>;
  isUniqueViolation(e: unknown): boolean;
  close(): Promise<void>;
}

/** `(?, ?, ?)` for n values. */
export function marks(n: number): string {
  return `(${Array.from({ length: n }, () => '?').join(', ')})`;
}

/** Splits rows so a multi-row statement stays under both backends' parameter limits. */
export function chunks<T>(items: readonly T[], size = 400): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export const int = z.coerce.number().int();
export const intOrNull = z.coerce.number().int().nullable();
export const bool = z.union([z.boolean(), z.number()]).transform((v) => v === true || v === 1);

/** A JSON text column parsed, then checked against its schema. */
export function jsonText<S extends z.ZodType>(schema: S): z.ZodPipe<z.ZodPipe<z.ZodString, z.ZodTransform<unknown, string>>, S> {
  return z
    .string()
    .transform((s, ctx): unknown => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.issues.push({ code: 'custom', message: 'not JSON', input: s });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

/**
 * Hot-path column readers: the same checks as `z.string()` / `int` without zod's per-row objects
 * (the rollout tick reads every execution of a rollout, the report handler one per update).
 */
function badColumn(table: string, column: string, v: unknown): EdgektError {
  return new EdgektError('EDGEKT_ERR_STORE_DATA', `a ${table} row failed validation: ${column} is ${v === null ? 'null' : typeof v}`, { table });
}

export function strCol(row: SqlRow, column: string, table: string): string {
  const v = row[column];
  if (typeof v !== 'string') throw badColumn(table, column, v);
  return v;
}

/** An integer column: numbers, or the decimal strings PostgreSQL returns for BIGINT. */
export function intCol(row: SqlRow, column: string, table: string): number {
  const v = row[column];
  const n = typeof v === 'number' ? v : typeof v === 'string' || typeof v === 'bigint' ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw badColumn(table, column, v);
  return n;
}

/** One column through its schema (JSON text columns), or EDGEKT_ERR_STORE_DATA naming table and column. */
export function parseColumn<S extends z.ZodType>(schema: S, row: SqlRow, column: string, table: string): z.output<S> {
  const r = schema.safeParse(row[column]);
  if (!r.success) throw new EdgektError('EDGEKT_ERR_STORE_DATA', `a ${table} row failed validation: ${column}: ${r.error.message}`, { table });
  return r.data;
}

/** Parses a row, or throws EDGEKT_ERR_STORE_DATA naming the table: persisted JSON is parsed, not cast. */
export function parseRow<S extends z.ZodType>(schema: S, row: SqlRow | undefined, table: string): z.output<S> {
  const r = schema.safeParse(row);
  if (!r.success) {
    throw new EdgektError('EDGEKT_ERR_STORE_DATA', `a ${table} row failed validation: ${r.error.message}`, { table });
  }
  return r.data;
}

export function json(v: unknown): string {
  return JSON.stringify(v);
}

export function jsonOrNull(v: unknown): string | null {
  return v === undefined || v === null ? null : JSON.stringify(v);
}

/** Opaque keyset cursors: base64url of the last key on the page. */
export function encodeCursor(key: string | number): string {
  return Buffer.from(String(key), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined): string | null {
  return cursor ? Buffer.from(cursor, 'base64url').toString('utf8') : null;
}

/** Takes limit + 1 rows and turns them into a page. */
export function toPage<T>(items: T[], limit: number, keyOf: (t: T) => string | number): { items: T[]; nextCursor: string | null } {
  if (items.length <= limit) return { items, nextCursor: null };
  const page = items.slice(0, limit);
  return { items: page, nextCursor: encodeCursor(keyOf(page[page.length - 1]!)) };
}

export function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `page limit must be an integer in 1..10000, got ${limit}`);
  }
  return limit;
}
