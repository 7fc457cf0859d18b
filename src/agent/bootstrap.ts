import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAgentConfig, type AgentConfig } from '../config/agent-config.js';
import { EdgektError } from '../core/errors.js';
import { generateKeyPair, privateKeyPem, publicKeyPem, readPrivateKeyFile, readPublicKeyFile, trustedKeyMap } from '../transport/keys.js';
import { readBrokerSecrets, type BrokerSecrets } from './connection.js';

export interface AgentBootstrap {
  config: AgentConfig;
  secrets: BrokerSecrets;
  trustedKeys: Map<string, KeyObject>;
  deviceKey: { privateKey: KeyObject; publicKeyPem: string };
}

/** Reads the config file, then every file it names (secrets, trusted keys, the device key). */
export async function bootstrapAgent(configFile: string): Promise<AgentBootstrap> {
  let text: string;
  try {
    text = await readFile(configFile, 'utf8');
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_CONFIG', `cannot read ${configFile}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const config = parseAgentConfig(text, configFile);
  const secrets = await readBrokerSecrets(config.broker);
  const keys: KeyObject[] = [];
  for (const [i, f] of config.trust.coordinatorKeys.entries()) {
    try {
      keys.push(await readPublicKeyFile(f));
    } catch (e) {
      throw new EdgektError('EDGEKT_ERR_CONFIG', `trust.coordinatorKeys.${i}: ${f}: ${e instanceof Error ? e.message : String(e)}`, { path: `trust.coordinatorKeys.${i}` });
    }
  }
  return { config, secrets, trustedKeys: trustedKeyMap(keys), deviceKey: await deviceKey(config) };
}

/** The device's signing key: read from `device.keyFile` (default STATE/device.key), created 0600 on first start. */
async function deviceKey(c: AgentConfig): Promise<{ privateKey: KeyObject; publicKeyPem: string }> {
  const file = c.device.keyFile ?? path.join(c.stateDir, 'device.key');
  if (!existsSync(file)) {
    await mkdir(path.dirname(file), { recursive: true });
    const pair = generateKeyPair();
    await writeFile(file, privateKeyPem(pair.privateKey), { mode: 0o600 });
    await chmod(file, 0o600);
    await writeFile(`${file.replace(/\.key$/, '')}.pub`, publicKeyPem(pair.publicKey));
  }
  const privateKey = await readPrivateKeyFile(file);
  return { privateKey, publicKeyPem: publicKeyPem(createPublicKey(privateKey)) };
}
