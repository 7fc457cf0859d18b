/**
 * The production broker config (deploy/mosquitto/) on a real Debian Mosquitto: pattern ACLs confine a
 * device to its own topics, mutual TLS admits only certificates from the edgekt CA and takes the
 * username from the certificate CN, and the optional password listener uses add-device.sh's passwords.
 * Every negative check stands next to a positive one on the same connection, so a broken setup that
 * delivers nothing fails too.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { IClientOptions, MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPasswordDevice, hasMosquitto, makePki, startBroker, tryConnect, type Broker } from './deploy-mosquitto-broker.js';

const P = 'edgekt/v1';
const NOT_AUTHORIZED = 0x87;

describe.skipIf(!hasMosquitto)('deploy/mosquitto on a real Mosquitto', () => {
  let pki: string;
  let otherPki: string;
  let broker: Broker;
  const clients: MqttClient[] = [];
  let n = 0;

  beforeAll(async () => {
    pki = mkdtempSync(path.join(os.tmpdir(), 'edgekt-pki-'));
    otherPki = mkdtempSync(path.join(os.tmpdir(), 'edgekt-pki-other-'));
    makePki(pki, ['A', 'B']);
    makePki(otherPki, ['A']); // another CA issuing a certificate with the same CN
    addPasswordDevice(pki, 'P', 'pw-of-P');
    broker = await startBroker(pki);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker?.stop();
    for (const d of [pki, otherPki]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const tlsUrl = () => `mqtts://127.0.0.1:${broker.tlsPort}`;
  const base = (): IClientOptions => ({
    ca: readFileSync(path.join(pki, 'ca.crt')), servername: 'localhost', rejectUnauthorized: true,
  });
  const certOf = (dir: string, name: string): IClientOptions => ({
    cert: readFileSync(path.join(dir, 'clients', `${name}.crt`)),
    key: readFileSync(path.join(dir, 'clients', `${name}.key`)),
  });

  async function open(name: string, extra: IClientOptions = {}, url = tlsUrl(), withCert = true): Promise<MqttClient> {
    const cert = withCert ? certOf(pki, name) : {};
    const r = await tryConnect(url, { ...base(), ...cert, clientId: `${name}-${n++}`, ...extra });
    if (!r.ok) throw new Error(`${name} could not connect: ${r.error}\n${broker.log()}`);
    clients.push(r.client);
    return r.client;
  }

  /** Records every message a client receives, and waits for given topics. */
  function inbox(c: MqttClient) {
    const got: string[] = [];
    const waiters: Array<() => void> = [];
    c.on('message', (topic) => { got.push(topic); waiters.forEach((w) => w()); });
    return {
      got,
      async waitFor(topics: string[], ms = 5_000) {
        const t0 = Date.now();
        while (!topics.every((t) => got.includes(t))) {
          if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${topics.join(', ')}; got ${got.join(', ')}`);
          await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 50); });
        }
        // A short grace after the last expected message: anything still in flight would land now.
        await new Promise((r) => setTimeout(r, 200));
      },
    };
  }

  async function grants(c: MqttClient, filters: string[]): Promise<Record<string, number>> {
    const granted = await c.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }])));
    return Object.fromEntries(granted.map((g) => [g.topic, g.qos]));
  }

  /** Publishes at QoS 1 and returns the PUBACK's verdict: 'ok' or the error text. */
  async function publishVerdict(c: MqttClient, topic: string): Promise<string> {
    try { await c.publishAsync(topic, JSON.stringify({ from: c.options.clientId }), { qos: 1 }); return 'ok'; }
    catch (e) { return (e as Error).message; }
  }

  it('a device reads only its own jobs, blocks and serve requests, and the rounds', async () => {
    const coord = await open('coordinator');
    const a = await open('A');
    const b = await open('B');
    const aIn = inbox(a);
    const bIn = inbox(b);
    const own = [`${P}/devices/A/jobs`, `${P}/devices/A/blocks/#`, `${P}/devices/A/serve`, `${P}/rounds/#`];
    const foreign = [`${P}/devices/B/jobs`, `${P}/devices/B/blocks/#`, `${P}/devices/B/serve`,
      `${P}/devices/+/jobs`, `${P}/devices/B/status`, `${P}/#`, '#'];
    const g = await grants(a, [...own, ...foreign]);
    await grants(b, [`${P}/devices/B/jobs`]);
    for (const f of own) expect(g[f], f).toBe(1);
    // Mosquitto 2.0's acl_file grants every SUBACK and checks read access on each delivery (a broker
    // that refuses at subscribe time answers 0x87); either way, what counts is that nothing arrives.
    for (const f of foreign) expect([1, NOT_AUTHORIZED], f).toContain(g[f]);

    const toB = [`${P}/devices/B/jobs`, `${P}/devices/B/blocks/art1/0`, `${P}/devices/B/serve`];
    const toA = [`${P}/devices/A/jobs`, `${P}/devices/A/blocks/art1/0`, `${P}/devices/A/serve`, `${P}/rounds/r1/config`];
    // B's first: messages from one publisher arrive in order, so once A has its own, B's were decided.
    for (const t of [...toB, ...toA]) expect(await publishVerdict(coord, t), t).toBe('ok');
    await bIn.waitFor([`${P}/devices/B/jobs`]); // positive control: the coordinator's publish to B is real
    await aIn.waitFor(toA);
    // Overlapping filters (`#`, `edgekt/v1/#`, own) each deliver a copy: compare the set of topics.
    expect([...new Set(aIn.got)].sort()).toEqual([...toA].sort());
  });

  it("a device publishes only its own status, telemetry, updates, pulls, and block responses", async () => {
    const coord = await open('coordinator');
    const shared = await open('coordinator');
    const a = await open('A');
    const cIn = inbox(coord);
    const sIn = inbox(shared);
    expect(await grants(coord, [`${P}/#`])).toEqual({ [`${P}/#`]: 1 });
    const sharedFilter = `$share/edgekt/${P}/devices/+/jobs/+/update`;
    expect(await grants(shared, [sharedFilter])).toEqual({ [sharedFilter]: 1 });

    const forbidden = [`${P}/devices/B/jobs/j1/update`, `${P}/devices/B/status`, `${P}/devices/B/telemetry`,
      `${P}/devices/B/pull`, `${P}/devices/B/jobs`, `${P}/devices/A/jobs`, `${P}/rounds/r1/update`];
    const allowed = [`${P}/devices/A/jobs/j1/update`, `${P}/devices/A/status`, `${P}/devices/A/telemetry`,
      `${P}/devices/A/pull`, `${P}/coordinators/c1/blocks/art9/0`];
    const verdicts: Record<string, string> = {};
    for (const t of forbidden) verdicts[t] = await publishVerdict(a, t);
    for (const t of allowed) expect(await publishVerdict(a, t), t).toBe('ok');
    await cIn.waitFor(allowed);
    await sIn.waitFor([`${P}/devices/A/jobs/j1/update`]);
    expect(cIn.got.sort()).toEqual([...allowed].sort());
    expect(sIn.got).toEqual([`${P}/devices/A/jobs/j1/update`]);
    // Mosquitto 2.0 answers a denied QoS 1 publish with PUBACK 0x87 (mqtt.js: "Publish error: Not authorized").
    for (const t of forbidden) expect(verdicts[t], t).toMatch(/not authori[sz]ed/i);
  });

  it('mutual TLS: only certificates from the edgekt CA get in', async () => {
    const good = await tryConnect(tlsUrl(), { ...base(), ...certOf(pki, 'A'), clientId: `A-${n++}` });
    expect(good.ok).toBe(true);
    if (good.ok) { expect(good.reasonCode).toBe(0); clients.push(good.client); }

    const noCert = await tryConnect(tlsUrl(), { ...base(), clientId: `nocert-${n++}` });
    expect(noCert.ok).toBe(false);
    const otherCa = await tryConnect(tlsUrl(), { ...base(), ...certOf(otherPki, 'A'), clientId: `forged-${n++}` });
    expect(otherCa.ok).toBe(false);
    const rogueServer = await tryConnect(tlsUrl(), {
      ...base(), ...certOf(pki, 'A'), ca: readFileSync(path.join(otherPki, 'ca.crt')), clientId: `A-${n++}`,
    });
    expect(rogueServer.ok).toBe(false); // and the device checks the broker against its CA
    expect(rogueServer.ok ? '' : rogueServer.error).toMatch(/certificate/i);
  });

  it('the username is the certificate CN, whatever the client claims', async () => {
    const coord = await open('coordinator');
    const cIn = inbox(coord);
    await grants(coord, [`${P}/devices/+/jobs/+/update`]);
    const a = await open('A', { username: 'B', password: 'x' }); // cert CN=A, CONNECT claims B
    expect(await publishVerdict(a, `${P}/devices/B/jobs/j2/update`)).toMatch(/not authori[sz]ed/i);
    expect(await publishVerdict(a, `${P}/devices/A/jobs/j2/update`)).toBe('ok');
    await cIn.waitFor([`${P}/devices/A/jobs/j2/update`]);
    expect(cIn.got).toEqual([`${P}/devices/A/jobs/j2/update`]);
    const claimsCoord = await open('A', { username: 'coordinator' });
    const aIn = inbox(claimsCoord);
    await grants(claimsCoord, [`${P}/devices/B/jobs`, `${P}/devices/A/jobs`]);
    for (const t of [`${P}/devices/B/jobs`, `${P}/devices/A/jobs`]) expect(await publishVerdict(coord, t)).toBe('ok');
    await aIn.waitFor([`${P}/devices/A/jobs`]);
    expect(aIn.got).toEqual([`${P}/devices/A/jobs`]);
  });

  it('password listener: add-device.sh credentials, the same ACL, wrong passwords refused', async () => {
    const url = `mqtts://127.0.0.1:${broker.passwordPort}`;
    const coord = await open('coordinator');
    const cIn = inbox(coord);
    await grants(coord, [`${P}/devices/+/telemetry`]);
    const p = await open('P', { username: 'P', password: 'pw-of-P' }, url, false);
    expect(await publishVerdict(p, `${P}/devices/A/telemetry`)).toMatch(/not authori[sz]ed/i);
    expect(await publishVerdict(p, `${P}/devices/P/telemetry`)).toBe('ok');
    await cIn.waitFor([`${P}/devices/P/telemetry`]);
    expect(cIn.got).toEqual([`${P}/devices/P/telemetry`]);

    // Mosquitto 2.0.11 answers CONNACK 0x87 (not authorized) to a bad password; 0x86 is the other
    // code a broker may use. Either way: no session.
    const refusal = [0x86, NOT_AUTHORIZED];
    const wrong = await tryConnect(url, { ...base(), username: 'P', password: 'nope', clientId: `P-${n++}` });
    const anon = await tryConnect(url, { ...base(), clientId: `anon-${n++}` });
    const certOnly = await tryConnect(url, { ...base(), username: 'A', password: 'guess', clientId: `A-${n++}` });
    for (const r of [wrong, anon, certOnly]) {
      expect(r.ok).toBe(false);
      expect(refusal).toContain(r.ok ? 0 : r.reasonCode);
    }
  });
});
