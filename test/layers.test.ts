import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// DESIGN.md "Layout and layering": a module imports only from lower ranks; same-rank folders never import each other.
const RANK: Record<string, number> = {
  core: 0, config: 1, runtime: 2, data: 2, store: 2, transport: 2, model: 3,
  compress: 4, bench: 4, federated: 4, jobs: 4.5, agent: 5, coordinator: 5, cli: 6,
};

const SRC = path.resolve(__dirname, '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function topFolder(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0]!;
}

export function layerViolations(): string[] {
  const out: string[] = [];
  for (const file of files(SRC)) {
    const from = topFolder(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.[^'"]+)['"]/g)) {
      const target = path.resolve(path.dirname(file), m[1]!);
      const to = topFolder(target);
      if (to === from) continue;
      const rf = RANK[from];
      const rt = RANK[to];
      if (rf === undefined || rt === undefined) out.push(`${path.relative(SRC, file)}: unknown folder ${from} -> ${to}`);
      else if (rt >= rf) out.push(`${path.relative(SRC, file)} (rank ${rf}) imports ${to} (rank ${rt})`);
    }
  }
  return out;
}

describe('layering', () => {
  it('every src module imports only from lower ranks', () => {
    expect(layerViolations()).toEqual([]);
  });
  it('knows every top-level folder under src', () => {
    const unknown = readdirSync(SRC).filter((d) => statSync(path.join(SRC, d)).isDirectory() && !(d in RANK));
    expect(unknown).toEqual([]);
  });
});
