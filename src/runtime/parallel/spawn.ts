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
 * Starts a training worker. From dist/ (production) the compiled worker-entry.js runs directly.
 * From source (vitest, tsx) the entry is TypeScript: Node ignores `--import tsx` for a worker's
 * own entry, so a tiny data: URL bootstrap registers tsx's loader first, then imports the entry.
 */
export function spawnTrainingWorker(): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./worker-entry.js', here));
  const entry = new URL('./worker-entry.ts', here).href;
  const code =
    `import { register } from ${JSON.stringify(tsxApiUrl())};\n` +
    `register();\n` +
    `await import(${JSON.stringify(entry)});\n`;
  return new Worker(new URL('data:text/javascript,' + encodeURIComponent(code)));
}
