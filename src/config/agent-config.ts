import { z } from 'zod';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { EdgektError } from '../core/errors.js';

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** "200MB", "1.5GB", "512KB" or a plain byte count. */
const ByteSize = z.union([
  z.number().int().positive(),
  z
    .string()
    .regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB)$/i, 'a size like "200MB"')
    .transform((s) => {
      const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)$/i.exec(s)!;
      const unit = { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30 }[m[2]!.toUpperCase() as 'B' | 'KB' | 'MB' | 'GB'];
      return Math.round(Number(m[1]) * unit);
    }),
]);

export const AgentConfigSchema = z
  .object({
    broker: z
      .object({
        /** mqtt://, mqtts://, ws:// or wss:// */
        url: z.string().regex(/^(mqtts?|wss?):\/\/.+/, 'a URL like mqtts://broker:8883'),
        tls: z
          .object({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
          .strict()
          .refine((t) => (t.cert === undefined) === (t.key === undefined), 'cert and key go together')
          .optional(),
        username: z.string().min(1).optional(),
        /** Secrets live in files, never on the command line or in this config. */
        passwordFile: z.string().min(1).optional(),
        keepaliveSeconds: z.number().int().min(5).max(3600).default(30),
        /** MQTT 5 session kept by the broker while the device is away (persistent session). */
        sessionExpirySeconds: z.number().int().min(60).default(7 * 24 * 3600),
        reconnectSeconds: z.number().min(0.1).max(300).default(2),
        /** 5 (default) or 4 for an MQTT 3.1.1 broker such as the embedded aedes (no session expiry there). */
        protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
      })
      .strict(),
    device: z
      .object({
        id: z.string().regex(DEVICE_ID, 'letters, digits, _ and -, at most 64'),
        groups: z.array(z.string().regex(DEVICE_ID)).default([]),
        /** A built-in profile name, a profile JSON file, or "auto" (match this machine). */
        profile: z.string().min(1).default('auto'),
        /** Ed25519 key that signs this device's students; created on first start when absent. */
        keyFile: z.string().min(1).optional(),
      })
      .strict(),
    /** Named local datasets: name → dataset spec (mnist | fashion-mnist[:DIR] | idx:DIR | folder:DIR). */
    datasets: z.record(z.string().regex(DEVICE_ID), z.string().min(1)).default({}),
    trust: z
      .object({
        /** Public keys (PEM files) whose signatures this device accepts on manifests. */
        coordinatorKeys: z.array(z.string().min(1)).min(1, 'at least one trusted coordinator key'),
      })
      .strict(),
    stateDir: z.string().min(1),
    telemetry: z
      .object({
        /** node-cron expression (6 fields = with seconds). */
        cron: z.string().min(1).default('*/30 * * * * *'),
      })
      .strict()
      .default({ cron: '*/30 * * * * *' }),
    limits: z
      .object({
        maxArtifactBytes: ByteSize.default(512 * 2 ** 20),
        /** Free disk to keep after a download, on the state directory's filesystem. */
        minFreeDiskBytes: ByteSize.default(64 * 2 ** 20),
        /** Block-pull requests in flight. */
        window: z.number().int().min(1).max(64).default(8),
      })
      .strict()
      .default({ maxArtifactBytes: 512 * 2 ** 20, minFreeDiskBytes: 64 * 2 ** 20, window: 8 }),
    /** Federated rounds (`round-invite` on the jobs topic): off unless enabled; then local data comes from `dataset`. */
    federated: z
      .object({
        enabled: z.boolean().default(false),
        /** A name from `datasets`: the local labelled data of every round (its train split). */
        dataset: z.string().regex(DEVICE_ID).optional(),
        /** Keep at most this many local samples (seeded pick), to bound a round's compute. */
        limit: z.number().int().positive().optional(),
        /** Seeds local training and the client-side noise (mixed with the round number). */
        seed: z.number().int().nonnegative().default(0),
      })
      .strict()
      .default({ enabled: false, seed: 0 }),
    /** At most one progress update per job per this many seconds (state changes always go at once). */
    progressSeconds: z.number().min(0.1).max(3600).default(2),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** One problem per line, each naming its field (`broker.url: …`), under EDGEKT_ERR_CONFIG. */
export function configError(source: string, error: z.ZodError): EdgektError {
  const issues = error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
  return new EdgektError('EDGEKT_ERR_CONFIG', `${source}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
}

/** YAML text through a zod schema: a YAML error names its line, a schema error each field. */
export function parseYamlConfig<S extends z.ZodType>(schema: S, text: string, source: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` at line ${e.linePos[0].line}` : '';
    throw new EdgektError('EDGEKT_ERR_CONFIG', `${source}: not valid YAML${where}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const r = schema.safeParse(raw ?? {});
  if (!r.success) throw configError(source, r.error);
  return r.data;
}

/** Parses agent YAML text; every error names its field. */
export function parseAgentConfig(text: string, source = 'agent config'): AgentConfig {
  return parseYamlConfig(AgentConfigSchema, text, source);
}
