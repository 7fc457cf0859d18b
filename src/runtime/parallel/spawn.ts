import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

function tsxApiUrl(): string {
  const meta = import.meta as ImportMeta & { resolve?: (s: string) => string };
  try {
    if (typeof meta.resolve === 'function') return meta.resolve('tsx/esm/api');
  } catch {
    // fall through to require-based resolution
  }
  // require.resolve would pick the CommonJS build; read the ESM entry from tsx's own exports map.
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import?: { default?: string } }> };
  const entry = pkg.exports['./esm/api']?.import?.default ?? './dist/esm/api/index.mjs';
  return pathToFileURL(path.join(path.dirname(pkgPath), entry)).href;
}

/**
 * The URL of a worker entry module beside `importMetaUrl`, with the caller's own extension: `.js`
 * when running from dist/, `.ts` when running from source.
 */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith('.ts') ? '.ts' : '.js'}`, importMetaUrl);
}

/**
 * Starts a worker on an entry module. A compiled .js entry (dist/, production) runs directly. A
 * TypeScript entry (vitest, tsx): Node ignores `--import tsx` for a worker's own entry, so a tiny
 * data: URL bootstrap registers tsx's loader first, then imports the entry.
 */
export function spawnWorker(entry: URL): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry);
  const code =
    `import { register } from ${JSON.stringify(tsxApiUrl())};\n` +
    `register();\n` +
    `await import(${JSON.stringify(entry.href)});\n`;
  return new Worker(new URL('data:text/javascript,' + encodeURIComponent(code)));
}

/** Starts a data-parallel training worker (worker-entry). */
export function spawnTrainingWorker(): Worker {
  return spawnWorker(siblingModule(import.meta.url, 'worker-entry'));
}
