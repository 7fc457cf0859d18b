// The agent's end-to-end smoke under arm64 emulation (run by scripts/arm64/smoke.sh with the arm64 node,
// cwd = the arm64 app dir): a real mosquitto, a real `edgekt agent` process on the arm64 node, one signed
// teacher pulled in blocks and compressed; exits 0 when the job succeeds with a signed student.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import mqtt from 'mqtt';
import { saveModel } from '../../dist/model/io.js';
import { generateKeyPair, publicKeyPem } from '../../dist/transport/keys.js';
import { signManifest } from '../../dist/transport/signing.js';
import { createBlockServer } from '../../dist/transport/blocks/index.js';
import { allowPullResponse } from '../../dist/transport/topics.js';

const say = (s) => console.error(`arm64-agent-smoke: ${s}`);
const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-arm64-agent-'));
const port = await new Promise((r) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
writeFileSync(path.join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
const procs = [spawn('/usr/sbin/mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' })];
const cleanup = () => { for (const p of procs) p.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); };
const fail = (why) => { say(`FAIL: ${why}`); cleanup(); process.exit(1); };
const timer = setTimeout(() => fail('no result within 15 minutes'), 15 * 60_000);
try {
  await tf.setBackend('cpu');
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.activation({ activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  await saveModel(m, path.join(dir, 'teacher'));
  const files = readdirSync(path.join(dir, 'teacher')).sort().map((p) => {
    const bytes = new Uint8Array(readFileSync(path.join(dir, 'teacher', p)));
    return { path: p, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  });
  const fleet = generateKeyPair();
  writeFileSync(path.join(dir, 'fleet.pub'), publicKeyPem(fleet.publicKey));
  writeFileSync(path.join(dir, 'profile.json'), JSON.stringify({ name: 'arm64-smoke', match: { arch: ['arm64'] }, budgets: { modelSizeKB: '0.9x' }, runtime: { backend: 'wasm', threads: 1 }, training: { batchSize: 32, maxRssMB: 8000, maxTemperatureC: 150 } }));
  writeFileSync(path.join(dir, 'agent.yaml'), [
    'broker:', `  url: mqtt://127.0.0.1:${port}`, 'device:', '  id: arm64-dev', `  profile: ${path.join(dir, 'profile.json')}`,
    'datasets:', '  digits: mnist', 'trust:', `  coordinatorKeys: [${path.join(dir, 'fleet.pub')}]`, `stateDir: ${path.join(dir, 'state')}`, 'log:', '  level: info', '',
  ].join('\n'));
  const run = (process.env.EDGEKT_ARM64_RUN ?? process.execPath).split(' ');
  const agent = spawn(run[0], [...run.slice(1), 'bin/edgekt.js', '--backend', 'wasm', 'agent', '--config', path.join(dir, 'agent.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(agent);
  const log = [];
  agent.stdout.on('data', (d) => log.push(String(d)));
  agent.stderr.on('data', (d) => log.push(String(d)));
  agent.on('exit', (c) => fail(`agent exited ${c}:\n${log.join('').slice(-2000)}`));
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, clientId: 'arm64-smoke-coordinator', reconnectPeriod: 500 });
  await new Promise((r) => client.once('connect', r));
  const store = new Map(files.map((f) => [f.sha256, f.bytes]));
  const server = createBlockServer({ client, requestFilter: 'edgekt/v1/devices/+/pull', allowResponseTopic: allowPullResponse, source: { stat: async (s) => (store.has(s) ? { size: store.get(s).byteLength } : null), read: async (s, o, n) => store.get(s).subarray(o, o + n) } });
  await server.ready;
  const states = [];
  const done = new Promise((resolve) => {
    client.on('message', (topic, payload) => {
      if (!topic.endsWith('/update')) return;
      const u = JSON.parse(String(payload));
      if (u.kind === 'state') { states.push(u.state); say(`state ${u.state}`); }
      if (['succeeded', 'failed', 'rejected', 'canceled'].includes(u.state)) resolve(u);
    });
  });
  await client.subscribeAsync('edgekt/v1/devices/arm64-dev/jobs/+/update', { qos: 1 });
  await client.subscribeAsync('edgekt/v1/devices/arm64-dev/status', { qos: 1 });
  await new Promise((r) => client.on('message', (t, p) => t.endsWith('/status') && JSON.parse(String(p)).state === 'online' && r()));
  const now = Date.now();
  const manifest = signManifest({
    schema: 1, kind: 'teacher', name: 'arm64-teacher', version: 1, target: { devices: ['arm64-dev'] },
    issuedAt: new Date(now - 1000).toISOString(), expires: new Date(now + 3600_000).toISOString(),
    files: files.map((f) => ({ path: f.path, size: f.bytes.byteLength, sha256: f.sha256, blockSize: 16384 })),
  }, fleet.privateKey);
  const t0 = Date.now();
  await client.publishAsync('edgekt/v1/devices/arm64-dev/jobs', JSON.stringify({
    type: 'compress', jobId: 'arm64-1', manifest, dataset: 'digits',
    settings: { limit: 200, distillEpochs: 1, finalEpochs: 1, maxIterations: 1, step: 0.3, runs: 3, briefSamples: 64, width: 0.5 },
  }), { qos: 1 });
  const end = await done;
  clearTimeout(timer);
  if (end.state !== 'succeeded' || end.result?.student?.manifest?.kind !== 'student') fail(`job ended ${end.state} ${JSON.stringify(end.error ?? {})}`);
  say(`succeeded in ${((Date.now() - t0) / 1000).toFixed(0)} s on ${process.arch}: ${states.join(' → ')}; student ${end.result.report.student.params} params (teacher ${end.result.report.teacher.params})`);
  agent.removeAllListeners('exit');
  await client.endAsync();
  cleanup();
  process.exit(0);
} catch (e) {
  fail(e instanceof Error ? e.stack : String(e));
}
