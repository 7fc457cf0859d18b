import { randomBytes, type KeyObject } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { CoordinatorStore, Execution } from '../store/coordinator/index.js';
import { createBlockServer, type BlockServer } from '../transport/blocks/index.js';
import { closeMqttClient } from '../transport/mqtt-close.js';
import { allowPullResponse, filters, topics } from '../transport/topics.js';
import { createArtifactStore } from './artifacts.js';
import { createDashboard, type Dashboard } from './dashboard.js';
import { createHttpApi, type HttpApiOptions } from './http.js';
import { createReportHandler } from './reports.js';
import { createRolloutDriver } from './rollout-driver.js';
import { createRoundIntake } from './rounds/intake.js';
import { createRoundDriver, type RoundDriverOptions } from './rounds/round-driver.js';

export interface CoordinatorOptions {
  config: CoordinatorConfig;
  store: CoordinatorStore;
  fleetKey: KeyObject;
  secrets: { password?: string; ca?: Buffer; cert?: Buffer; key?: Buffer };
  readTokens: readonly string[];
  adminTokens: readonly string[];
  logger: Logger;
  clock?: Clock;
  extendHttp?: HttpApiOptions['extend'];
  /** Evaluates each new federated global (its metrics go into the round result). */
  evaluateGlobal?: RoundDriverOptions['evaluate'];
  /** The dashboard (web/ and its event stream) on the HTTP API; default true. */
  dashboard?: boolean;
}

export interface Coordinator {
  start(): Promise<{ httpUrl: string }>;
  stop(): Promise<void>;
  readonly http: FastifyInstance | null;
  /** Runs one rollout tick now (tests; production ticks on a timer). */
  tick(): Promise<void>;
}

/** Device messages (status, telemetry, updates) handled at once before the client stops reading. */
const MAX_IN_HAND = 512;

const FINAL = new Set(['succeeded', 'failed', 'rejected', 'canceled', 'timed_out']);

/**
 * The fleet coordinator: a persistent MQTT 5 session whose report subscriptions are shared
 * (`$share/<group>/…`, so N coordinators split the load), the block server for published
 * teachers, the rollout driver on a timer, and the HTTP API. Every decision reads the store, so
 * coordinators are interchangeable and restartable.
 */
export function createCoordinator(o: CoordinatorOptions): Coordinator {
  const c = o.config;
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  let client: MqttClient | null = null;
  let server: BlockServer | null = null;
  let http: FastifyInstance | null = null;
  let timer: NodeJS.Timeout | null = null;
  let ticking: Promise<void> | null = null;
  const live = new Map<string, { deviceId: string; state: string; progress: unknown; at: number }>();
  const artifacts = createArtifactStore(o.store, c.artifactsDir);
  let driver: ReturnType<typeof createRolloutDriver> | null = null;
  let rounds: ReturnType<typeof createRoundDriver> | null = null;
  let dashboard: Dashboard | null = null;

  let lastTickMs = 0;
  const tick = async (): Promise<void> => {
    if (!driver || ticking) return ticking ?? undefined;
    const d = driver;
    const t0 = performance.now();
    ticking = d.tick().then(() => rounds?.tick()).finally(() => {
      lastTickMs = performance.now() - t0;
      ticking = null;
    });
    return ticking;
  };
  // An update may open the next stage: tick soon, but at most once per quarter tick however many
  // updates arrive, and never sooner than twice the last tick's duration: a tick reads every
  // execution of every running rollout, so on a large fleet back-to-back ticks took a core and
  // left hundreds of MB of garbage behind.
  let soon: NodeJS.Timeout | null = null;
  const tickSoon = (): void => {
    if (soon) return;
    soon = setTimeout(() => {
      soon = null;
      void tick();
    }, Math.max(20, c.tickMs / 4, 2 * lastTickMs));
    soon.unref();
  };

  async function cancelInFlight(rolloutId: string): Promise<void> {
    let cursor: string | null = null;
    do {
      const page: { items: Execution[]; nextCursor: string | null } = await o.store.listExecutions(rolloutId, {}, { limit: 1000, cursor });
      for (const e of page.items) if (!FINAL.has(e.state)) await client?.publishAsync(topics.jobs(e.deviceId), JSON.stringify({ type: 'cancel', jobId: e.jobId }), { qos: 1 });
      cursor = page.nextCursor;
    } while (cursor);
  }

  return {
    get http() {
      return http;
    },
    tick,
    async start() {
      const share = c.broker.shareGroup;
      const opts: IClientOptions = {
        protocolVersion: c.broker.protocolVersion, clientId: `edgekt-coordinator-${c.id}`, clean: false, reconnectPeriod: 1000,
        // mqtt.js logs every packet through `debug`, which gathers its arguments even when off: a
        // fifth of the coordinator's garbage at 10,000 devices. DEBUG=mqttjs* keeps it.
        ...(/mqttjs/.test(process.env.DEBUG ?? '') ? {} : { log: () => undefined }),
        ...(c.broker.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
        ...(c.broker.username ? { username: c.broker.username } : {}),
        ...(o.secrets.password !== undefined ? { password: o.secrets.password } : {}),
        ...(o.secrets.ca ? { ca: o.secrets.ca } : {}), ...(o.secrets.cert ? { cert: o.secrets.cert } : {}), ...(o.secrets.key ? { key: o.secrets.key } : {}),
      };
      client = mqtt.connect(c.broker.url, opts);
      const cl = client;
      cl.setMaxListeners(0); // block servers and pulls each listen; bounded by PULLS_AT_ONCE, not by 10
      const dash = o.dashboard === false ? null : createDashboard({ store: o.store, now: () => clock.now() });
      dashboard = dash;
      const reports = createReportHandler({
        coordinatorId: c.id, store: o.store, client: cl, artifactsDir: c.artifactsDir, clock, logger: log,
        onProgress: (deviceId, jobId, progress, state) => live.set(jobId, { deviceId, state, progress, at: clock.now() }),
        ...(dash ? { onEvent: dash.onReport } : {}),
      });
      cl.on('connect', () => {
        // Status is retained: retained messages are not delivered on shared subscriptions, so every
        // coordinator subscribes to status directly (upserts are idempotent and ordered by time).
        cl.subscribe(filters.allStatus, { qos: 1 });
        const shared = (f: string): string => (share ? `$share/${share}/${f}` : f);
        cl.subscribe([shared(filters.allTelemetry), shared(filters.allJobUpdates), shared(filters.allRoundReports)], { qos: 1 });
        log.info({ broker: c.broker.url }, 'coordinator connected');
      });
      cl.on('error', (e) => log.warn({ err: e.message }, 'mqtt error'));
      // Backpressure: with MAX_IN_HAND device messages being handled, mqtt.js reads no further packet
      // (its handleMessage callback waits) and the broker holds the rest, instead of this process.
      let inHand = 0;
      const waiting: Array<() => void> = [];
      cl.handleMessage = (_packet, callback) => {
        if (inHand < MAX_IN_HAND) callback();
        else waiting.push(() => callback());
      };
      const intake = createRoundIntake({ coordinatorId: c.id, store: o.store, artifacts, client: cl, artifactsDir: c.artifactsDir, clock, logger: log, onRecorded: () => tickSoon() });
      cl.on('message', (topic, payload) => {
        if (topic.startsWith('edgekt/v1/rounds/')) return void intake.handle(topic, payload);
        if (topic.endsWith('/status') || topic.endsWith('/telemetry') || topic.endsWith('/update')) {
          inHand++;
          void reports.handle(topic, payload).then(() => {
            inHand--;
            if (inHand < MAX_IN_HAND) waiting.shift()?.();
            if (topic.endsWith('/update')) tickSoon();
          });
        }
      });
      server = createBlockServer({ client: cl, requestFilter: share ? filters.sharedPulls(share) : 'edgekt/v1/devices/+/pull', source: artifacts.source, allowResponseTopic: allowPullResponse, logger: log });
      driver = createRolloutDriver({
        coordinatorId: c.id, store: o.store, artifacts, fleetKey: o.fleetKey, clock, logger: log, leaseMs: Math.max(5000, 5 * c.tickMs), redispatchMs: c.redispatchMs,
        publishJob: async (deviceId, message) => {
          await cl.publishAsync(topics.jobs(deviceId), JSON.stringify(message), { qos: 1 });
        },
      });
      rounds = createRoundDriver({
        coordinatorId: c.id, store: o.store, artifacts, intake, fleetKey: o.fleetKey, clock, logger: log, leaseMs: Math.max(5000, 5 * c.tickMs),
        ...(o.evaluateGlobal ? { evaluate: o.evaluateGlobal } : {}),
        publishInvite: async (deviceId, invite) => {
          await cl.publishAsync(topics.jobs(deviceId), JSON.stringify(invite), { qos: 1 });
        },
        publishResult: async (result) => {
          await cl.publishAsync(topics.roundResult(result.roundId), JSON.stringify(result), { qos: 1, retain: true });
        },
      });
      http = await createHttpApi({
        store: o.store, artifacts, readTokens: o.readTokens, adminTokens: o.adminTokens,
        blocksServed: () => server?.stats().blocksServed ?? 0,
        newId: () => `r${clock.now().toString(36)}${randomBytes(3).toString('hex')}`,
        onAbort: cancelInFlight, progress: () => live,
        extend: (app, auth) => {
          dash?.mount(app, auth);
          o.extendHttp?.(app, auth);
        },
      });
      const address = await http.listen({ host: c.http.host, port: c.http.port });
      timer = setInterval(() => void tick(), c.tickMs);
      timer.unref();
      return { httpUrl: address };
    },
    async stop() {
      if (timer) clearInterval(timer);
      if (soon) clearTimeout(soon);
      await ticking;
      await driver?.release();
      await rounds?.release();
      dashboard?.close();
      await http?.close();
      await server?.close();
      if (client) await closeMqttClient(client);
      await o.store.close();
    },
  };
}
