import type { MqttClient } from 'mqtt';
import type { ManifestFile } from '../config/manifest.js';
import type { Db } from '../store/sqlite.js';
import { createBlockLedger } from '../store/block-ledger.js';
import { topics } from '../transport/topics.js';
import { createFileBlockSink, pullFile, pullFileHttp, type PullProgress } from '../transport/blocks/index.js';

export interface PullManifestFileOptions {
  client: MqttClient;
  db: Db;
  deviceId: string;
  /** Ledger key of the transfer: a restarted pull with the same key resumes. */
  ledgerKey: string;
  /** This pull's own level under the device's blocks/ namespace. */
  responseLevel: string;
  window: number;
  signal: AbortSignal;
  onProgress?: (p: PullProgress) => void;
}

/**
 * Pulls one file of a verified manifest to `dest`: over HTTP range requests when the entry names
 * a URL, else block by block over `devices/{id}/pull`, resumable from the SQLite block ledger.
 * Resolves once the whole-file sha256 matches the manifest's.
 */
export async function pullManifestFile(f: ManifestFile, dest: string, o: PullManifestFileOptions): Promise<void> {
  const ledger = createBlockLedger(o.db, o.ledgerKey, Math.ceil(f.size / f.blockSize));
  const sink = await createFileBlockSink(dest, f.size);
  const common = {
    file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) },
    ledger, sink, signal: o.signal, ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  };
  try {
    if (f.url) await pullFileHttp({ ...common, url: f.url });
    else {
      await pullFile({
        ...common, client: o.client, requestTopic: topics.pull(o.deviceId),
        responseTopicPrefix: topics.deviceBlocks(o.deviceId, o.responseLevel.replace(/[^A-Za-z0-9._:-]/g, '_')), window: o.window,
      });
    }
  } finally {
    await sink.close();
  }
}
