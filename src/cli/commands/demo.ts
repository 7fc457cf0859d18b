import path from 'node:path';
import { rankProfiles } from '../../config/device-profile.js';
import { loadAllProfiles } from '../../config/profile-files.js';
import { EdgektError } from '../../core/errors.js';
import { renderMarkdown } from '../../compress/report/index.js';
import type { CliContext } from '../context.js';
import { runCompressCommand } from './compress.js';
import { machineFacts } from './profile.js';
import { cacheRoot, ensureCachedTeacher } from './teacher.js';

export interface SingleDemoOptions {
  data: string;
  out?: string;
  profile?: string;
  width: number;
  teacherEpochs: number;
  distillEpochs: number;
  finalEpochs: number;
  seed: number;
}

/**
 * The single-device demo (`edgekt demo --single`): the reference teacher trained on the `mnist`
 * package (cached after the first run), compressed in this process for the profile that matches this
 * machine, report printed.
 */
export async function runSingleDemo(ctx: CliContext, o: SingleDemoOptions): Promise<number> {
  const started = performance.now();
  const info = await ctx.backend();
  ctx.out(`backend   ${info.backend} (${info.reason})`);
  const teacher = await ensureCachedTeacher(ctx, { data: o.data, seed: o.seed, epochs: o.teacherEpochs, batchSize: 64 });
  ctx.out(
    `teacher   ${teacher.cached ? 'cached' : 'trained'} ${teacher.dir}: ${teacher.meta.params.toLocaleString('en-US')} params, ` +
      `${(teacher.meta.testAccuracy * 100).toFixed(2)}% test accuracy (${teacher.meta.trainSeconds.toFixed(0)} s to train)`,
  );
  let profile = o.profile;
  if (!profile) {
    const best = rankProfiles(loadAllProfiles(), await machineFacts())[0];
    if (!best) throw new EdgektError('EDGEKT_ERR_PROFILE', 'no built-in profile matches this machine; pass --profile');
    profile = best.name;
  }
  ctx.out(`profile   ${profile}`);
  const out = o.out ?? path.join(cacheRoot(), 'demo');
  const { report, code } = await runCompressCommand(ctx, {
    teacher: teacher.dir, data: o.data, profile, out, seed: o.seed, width: o.width,
    distillEpochs: o.distillEpochs, finalEpochs: o.finalEpochs, briefSamples: 2048, batchSize: 64,
    step: 0.1, maxIterations: 30, importance: 'l1', minChannels: 4, roundTo: 4, runs: 30, valFraction: 0.1,
  });
  ctx.out('');
  ctx.out(renderMarkdown(report, path.join(out, 'report.svg')));
  ctx.out(`demo finished in ${((performance.now() - started) / 1000).toFixed(0)} s; student in ${path.join(out, 'student')}`);
  return code;
}
