import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeModelBytes } from '../../model/index.js';
import type { ModelBytes } from '../../store/checkpoint-store.js';
import { renderChartSvg, renderMarkdown, type CompressReport } from '../report/index.js';

/** Where a job's outputs land inside its out directory. */
export const JOB_OUTPUTS = { student: 'student', json: 'report.json', markdown: 'report.md', chart: 'report.svg' } as const;

/** Writes OUT/student (a tfjs model directory), report.json, report.md and report.svg. */
export async function writeJobOutputs(out: string, student: ModelBytes, report: CompressReport): Promise<void> {
  await mkdir(out, { recursive: true });
  await writeModelBytes(student, path.join(out, JOB_OUTPUTS.student));
  await writeFile(path.join(out, JOB_OUTPUTS.json), JSON.stringify(report, null, 2));
  await writeFile(path.join(out, JOB_OUTPUTS.chart), await renderChartSvg(report));
  await writeFile(path.join(out, JOB_OUTPUTS.markdown), renderMarkdown(report, JOB_OUTPUTS.chart));
}
