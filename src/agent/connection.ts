import { readFile } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';
import type { AgentConfig } from '../config/agent-config.js';
import type { StatusMessage } from '../config/messages.js';
import { EdgektError } from '../core/errors.js';

/** Secrets and TLS material read from the files the config names (never from the command line). */
export interface BrokerSecrets {
  password?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

async function readSecret(file: string, field: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_CONFIG', `${field}: cannot read ${file} (${e instanceof Error ? e.message : String(e)})`, { path: field });
  }
}

export async function readBrokerSecrets(c: AgentConfig['broker']): Promise<BrokerSecrets> {
  const s: BrokerSecrets = {};
  if (c.passwordFile) s.password = (await readSecret(c.passwordFile, 'broker.passwordFile')).toString('utf8').replace(/\r?\n$/, '');
  if (c.tls?.ca) s.ca = await readSecret(c.tls.ca, 'broker.tls.ca');
  if (c.tls?.cert) s.cert = await readSecret(c.tls.cert, 'broker.tls.cert');
  if (c.tls?.key) s.key = await readSecret(c.tls.key, 'broker.tls.key');
  return s;
}

/**
 * MQTT 5 options of a device: a persistent session (clean: false, session expiry > 0) so QoS 1 jobs
 * sent while it was away are delivered on return, and a retained Last Will saying `offline`.
 */
export function deviceClientOptions(c: AgentConfig, secrets: BrokerSecrets, will: { topic: string; status: StatusMessage }): IClientOptions {
  return {
    protocolVersion: c.broker.protocolVersion,
    clientId: `edgekt-agent-${c.device.id}`,
    clean: false,
    keepalive: c.broker.keepaliveSeconds,
    reconnectPeriod: Math.round(c.broker.reconnectSeconds * 1000),
    connectTimeout: 15_000,
    ...(c.broker.protocolVersion === 5 ? { properties: { sessionExpiryInterval: c.broker.sessionExpirySeconds } } : {}),
    will: { topic: will.topic, payload: Buffer.from(JSON.stringify(will.status)), qos: 1, retain: true },
    ...(c.broker.username ? { username: c.broker.username } : {}),
    ...(secrets.password !== undefined ? { password: secrets.password } : {}),
    ...(secrets.ca ? { ca: secrets.ca } : {}),
    ...(secrets.cert ? { cert: secrets.cert } : {}),
    ...(secrets.key ? { key: secrets.key } : {}),
    resubscribe: true,
  };
}
