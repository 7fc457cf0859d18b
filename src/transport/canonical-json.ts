/**
 * Canonical JSON, the subset of RFC 8785 (JCS) that edgekt's documents need: object keys sorted
 * by UTF-16 code units, no whitespace, ECMAScript number and string serialisation. Signatures are
 * made over these bytes, so two equal documents always sign and verify the same whatever their
 * key order or formatting. Non-finite numbers, lone surrogates, non-plain objects and undefined
 * array items are refused rather than silently changed; undefined object members are omitted,
 * exactly as JSON.stringify omits them.
 */
export function canonicalJson(value: unknown): string {
  return write(value, 0);
}

const MAX_DEPTH = 64;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function write(v: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new TypeError('canonical JSON: nested too deeply');
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonical JSON: non-finite number ${v}`);
      return JSON.stringify(v);
    case 'string':
      if (LONE_SURROGATE.test(v)) throw new TypeError('canonical JSON: lone surrogate in string');
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) {
        return `[${v.map((item) => {
          if (item === undefined) throw new TypeError('canonical JSON: undefined array item');
          return write(item, depth + 1);
        }).join(',')}]`;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError('canonical JSON: only plain objects');
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${write(k, depth + 1)}:${write(obj[k], depth + 1)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON: cannot encode ${typeof v}`);
  }
}
