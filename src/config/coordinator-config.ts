import { z } from 'zod';
import { parseYamlConfig } from './agent-config.js';

const Id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'letters, digits, _ and -, at most 64');

export const CoordinatorConfigSchema = z
  .object({
    /** Unique per coordinator process: names its MQTT client, leases and block-response topics. */
    id: Id,
    broker: z
      .object({
        url: z.string().regex(/^(mqtts?|wss?):\/\/.+/, 'a URL like mqtts://broker:8883'),
        tls: z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() }).strict().optional(),
        username: z.string().min(1).optional(),
        passwordFile: z.string().min(1).optional(),
        /** Shared-subscription group: coordinators in one group split the devices' reports; null on a broker without them. */
        shareGroup: Id.nullable().default('edgekt'),
        /** 5 (default) or 4 for an MQTT 3.1.1 broker such as the embedded aedes. */
        protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
      })
      .strict(),
    store: z.union([
      z.object({ sqlite: z.string().min(1) }).strict(),
      /** The connection URL is read from a file (it holds a password). */
      z.object({ postgresUrlFile: z.string().min(1) }).strict(),
    ]),
    http: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Bearer tokens, one per line in each file: read-only and admin. */
        readTokensFile: z.string().min(1).optional(),
        adminTokensFile: z.string().min(1),
      })
      .strict(),
    /** Ed25519 private key (PEM) that signs teacher manifests for the fleet. */
    fleetKey: z.string().min(1),
    /** Where published teachers and pulled students are kept, content-addressed. */
    artifactsDir: z.string().min(1),
    /** Rollout driver tick. */
    tickMs: z.number().int().min(50).max(60_000).default(1000),
    /** A job its device has not acknowledged after this long is published again (the device dedups). */
    redispatchMs: z.number().int().min(100).max(3_600_000).default(60_000),
    /**
     * V8's heap growing factor, as a percentage over 1 (V8's --heap-growing-percent), set when the
     * coordinator starts; 0 leaves V8's own heuristic (up to 4x the live heap between major GCs).
     * A coordinator promotes short-lived message objects at a high rate; at 10,000 devices the
     * default let garbage build its RSS to 290-345 MB over a 62 MB live heap; 30 kept it near 200 MB
     * at the same speed (docs/benchmarks.md, Fleet).
     */
    heapGrowingPercent: z.number().int().min(0).max(300).default(30),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).strict().default({ level: 'info' }),
  })
  .strict();
export type CoordinatorConfig = z.infer<typeof CoordinatorConfigSchema>;

export function parseCoordinatorConfig(text: string, source = 'coordinator config'): CoordinatorConfig {
  return parseYamlConfig(CoordinatorConfigSchema, text, source);
}
