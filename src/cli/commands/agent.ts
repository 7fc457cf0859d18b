import type { Command } from 'commander';
import pino from 'pino';
import * as tf from '@tensorflow/tfjs';
import { rankProfiles } from '../../config/device-profile.js';
import { loadAllProfiles, loadProfile } from '../../config/profile-files.js';
import { EdgektError } from '../../core/errors.js';
import { bootstrapAgent } from '../../agent/bootstrap.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { createEnrolledTrainerFor, findReceivedTeacherDir } from '../../agent/round-enrolment.js';
import { loadModel } from '../../model/io.js';
import { loadDataset } from '../../data/index.js';
import { runCompressJobInWorker } from '../../jobs/index.js';
import { action, type CliContext } from '../context.js';
import { machineFacts } from './profile.js';

/** `edgekt agent --config FILE`: the device daemon, until SIGTERM/SIGINT (then a clean stop). */
export function registerAgent(program: Command, ctx: CliContext): void {
  program
    .command('agent')
    .description('run the device daemon: receive signed teachers over MQTT, compress them within this device\'s budgets, report back')
    .requiredOption('--config <file>', 'agent YAML config (broker, TLS, device id, profile, datasets, trusted keys, state dir)')
    .option('--check', 'validate the config and every file it names, print the resolved profile, and exit')
    .action(
      action(ctx, async (o: { config: string; check?: boolean }) => {
        const boot = await bootstrapAgent(o.config);
        const c = boot.config;
        let profile;
        if (c.device.profile === 'auto') {
          const best = rankProfiles(loadAllProfiles(), await machineFacts())[0];
          if (!best) throw new EdgektError('EDGEKT_ERR_PROFILE', 'device.profile is auto but no built-in profile matches this machine');
          profile = loadProfile(best.name);
        } else profile = loadProfile(c.device.profile);
        const fed = c.federated;
        if (fed.enabled && (fed.dataset === undefined || c.datasets[fed.dataset] === undefined)) {
          throw new EdgektError('EDGEKT_ERR_CONFIG', `federated.enabled needs federated.dataset naming one of datasets (has: ${Object.keys(c.datasets).join(', ') || 'none'})`);
        }
        if (o.check) {
          ctx.out(`config ok: device ${c.device.id}, profile ${profile.name}, broker ${c.broker.url}, ${boot.trustedKeys.size} trusted key(s), datasets ${Object.keys(c.datasets).join(', ') || 'none'}`);
          return 0;
        }
        const logger = pino({ level: c.log.level, base: { deviceId: c.device.id } });
        const info = await ctx.backend();
        let agent: Agent | null = null;
        const rounds = fed.enabled
          ? createEnrolledTrainerFor({
              stateDir: c.stateDir, profile, logger, seed: fed.seed,
              loadData: async () => (await loadDataset(c.datasets[fed.dataset!]!, { seed: fed.seed, ...(fed.limit ? { limit: fed.limit } : {}) })).train,
              teacherFor: async (sha) => {
                const dir = agent?.jobs ? findReceivedTeacherDir(agent.jobs, c.stateDir, sha) : null;
                return dir ? (await loadModel(dir)).model : null;
              },
            })
          : null;
        agent = createAgent({
          ...boot, profile, logger, ...(rounds ? { roundTrainerFor: rounds } : {}),
          run: (spec, ro) => runCompressJobInWorker(spec, { ...ro, backend: info.backend }),
          versions: { edgekt: '0.1.0', node: process.versions.node, tfjs: tf.version.tfjs, backend: info.backend },
        });
        await agent.start();
        logger.info({ profile: profile.name, backend: info.backend }, 'agent started');
        await new Promise<void>((resolve) => {
          const done = (): void => resolve();
          process.once('SIGTERM', done);
          process.once('SIGINT', done);
        });
        logger.info('stopping');
        await agent.stop();
        rounds?.dispose();
        return 0;
      }),
    );
}
