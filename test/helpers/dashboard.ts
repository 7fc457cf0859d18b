import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { chromium, type Browser } from 'playwright-core';
import { startSimDevice, type SimCounters } from '../../src/cli/fleet-sim/sim-device.js';
import { CoordinatorConfigSchema } from '../../src/config/coordinator-config.js';
import { createCoordinator, type Coordinator } from '../../src/coordinator/daemon.js';
import { createSqliteCoordinatorStore, type CoordinatorStore } from '../../src/store/coordinator/index.js';
import { generateKeyPair, publicKeyPem, trustedKeyMap } from '../../src/transport/keys.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Debian's chromium, headless, with nothing that reaches the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface DashboardStack {
  url: string;
  brokerUrl: string;
  store: CoordinatorStore;
  coordinator: Coordinator;
  readToken: string;
  adminToken: string;
  simIds: string[];
  counters: SimCounters;
  stop(): Promise<void>;
}

/** A real coordinator (temp SQLite, http port 0) on a spawned Mosquitto, with simulated devices. */
export async function startDashboardStack(o: { devices: number; profiles?: string[]; telemetryMs?: number }): Promise<DashboardStack> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-dash-'));
  const mosq: Mosquitto = await startMosquitto();
  const store = await createSqliteCoordinatorStore(path.join(dir, 'coordinator.db'));
  const fleet = generateKeyPair();
  const readToken = `read-${randomBytes(12).toString('hex')}`;
  const adminToken = `admin-${randomBytes(12).toString('hex')}`;
  const config = CoordinatorConfigSchema.parse({
    id: 'dash-test', broker: { url: mosq.url }, store: { sqlite: path.join(dir, 'coordinator.db') },
    http: { host: '127.0.0.1', port: 0, adminTokensFile: 'unused' }, fleetKey: 'unused', artifactsDir: path.join(dir, 'artifacts'), tickMs: 200,
  });
  const coordinator = createCoordinator({
    config, store, fleetKey: fleet.privateKey, secrets: {}, readTokens: [readToken], adminTokens: [adminToken],
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  const { httpUrl } = await coordinator.start();
  const counters: SimCounters = { connected: 0, jobs: 0, duplicateJobs: 0, succeeded: 0, failed: 0, bytesPulled: 0, messagesOut: 0, messagesIn: 0 };
  const profiles = o.profiles ?? ['sim-small', 'sim-fast'];
  const simIds = Array.from({ length: o.devices }, (_, i) => `sim-${i}`);
  const sims: MqttClient[] = simIds.map((id, i) => {
    const key = generateKeyPair();
    return startSimDevice({
      url: mosq.url, id, profile: profiles[i % profiles.length]!, trustedKeys: trustedKeyMap([fleet.publicKey]),
      deviceKey: { privateKey: key.privateKey, publicKeyPem: publicKeyPem(key.publicKey) }, controlOnly: false, counters, telemetryMs: o.telemetryMs ?? 400,
    });
  });
  return {
    url: httpUrl, brokerUrl: mosq.url, store, coordinator, readToken, adminToken, simIds, counters,
    async stop() {
      await Promise.all(sims.map((s) => s.endAsync(true)));
      await coordinator.stop();
      await mosq.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until pred() holds, polling (for checks outside the page, e.g. the store). */
export async function until<T>(pred: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
