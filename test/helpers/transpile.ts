import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { ROOT } from './cli.js';

/**
 * Transpiles a TypeScript entry and every relative module it imports into `outDir` (same layout as
 * under ROOT), so a test can spawn it with plain `node` many times without paying tsx's start-up
 * on each spawn. Packages resolve through a node_modules link to the repo's.
 */
export function transpileTree(entry: string, outDir: string): string {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    const out = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true, verbatimModuleSyntax: false },
    }).outputText;
    const target = path.join(outDir, path.relative(ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, out);
    for (const m of source.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.[^'"]+)\.js['"]/g)) {
      visit(path.resolve(path.dirname(file), `${m[1]!}.ts`));
    }
  };
  visit(entry);
  writeFileSync(path.join(outDir, 'package.json'), '{"type":"module"}\n');
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(outDir, 'node_modules'), 'dir');
  return path.join(outDir, path.relative(ROOT, entry)).replace(/\.ts$/, '.js');
}
