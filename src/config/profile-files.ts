import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgektError } from '../core/errors.js';
import { BUILTIN_PROFILES, parseDeviceProfile, type DeviceProfile } from './device-profile.js';

/** src/config and dist/config both sit two levels below the package root. */
export const PROFILE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'device-profiles');

function readProfileFile(file: string): DeviceProfile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_PROFILE', `${file}: not readable JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return parseDeviceProfile(json, path.basename(file));
}

/** A built-in name (device-profiles/NAME.json) or a path to a profile JSON file. */
export function loadProfile(nameOrFile: string): DeviceProfile {
  if (/^[a-z0-9][a-z0-9-]*$/.test(nameOrFile) && !existsSync(nameOrFile)) {
    const file = path.join(PROFILE_DIR, `${nameOrFile}.json`);
    if (!existsSync(file)) {
      throw new EdgektError('EDGEKT_ERR_PROFILE', `unknown profile "${nameOrFile}"; built in: ${BUILTIN_PROFILES.join(', ')}`);
    }
    return readProfileFile(file);
  }
  if (!existsSync(nameOrFile)) throw new EdgektError('EDGEKT_ERR_PROFILE', `profile file ${nameOrFile} does not exist`);
  return readProfileFile(nameOrFile);
}

/** Every built-in profile, sorted by file name. */
export function loadAllProfiles(): DeviceProfile[] {
  return readdirSync(PROFILE_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readProfileFile(path.join(PROFILE_DIR, f)));
}

/** A job's profile field: a name or file is loaded, an inline profile is validated. */
export function resolveProfile(p: string | DeviceProfile): DeviceProfile {
  return typeof p === 'string' ? loadProfile(p) : parseDeviceProfile(p, 'inline profile');
}
