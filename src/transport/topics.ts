/**
 * Every MQTT topic edgekt uses, built and parsed in one place so broker ACLs, the agent and the
 * coordinator cannot drift apart. Ids are single topic levels: no '/', no wildcards, no '$'.
 */
export const TOPIC_PREFIX = 'edgekt/v1';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** True when `id` can be one topic level (device, coordinator, job or round id). */
export function isTopicId(id: string): boolean {
  return ID.test(id);
}

function level(id: string, what: string): string {
  if (!isTopicId(id)) throw new TypeError(`${what} "${id}" is not a valid topic level`);
  return id;
}

const dev = (id: string): string => `${TOPIC_PREFIX}/devices/${level(id, 'device id')}`;

export const topics = {
  /** Retained; the Last Will publishes `offline` here. */
  status: (deviceId: string): string => `${dev(deviceId)}/status`,
  telemetry: (deviceId: string): string => `${dev(deviceId)}/telemetry`,
  /** Job offers and commands to the device. */
  jobs: (deviceId: string): string => `${dev(deviceId)}/jobs`,
  jobUpdate: (deviceId: string, jobId: string): string => `${dev(deviceId)}/jobs/${level(jobId, 'job id')}/update`,
  /** Block requests from the device to the coordinators. */
  pull: (deviceId: string): string => `${dev(deviceId)}/pull`,
  /** Where the coordinators answer a device's pulls; `suffix` is the puller's own sub-topic. */
  deviceBlocks: (deviceId: string, suffix: string): string => `${dev(deviceId)}/blocks/${level(suffix, 'suffix')}`,
  deviceBlocksPrefix: (deviceId: string): string => `${dev(deviceId)}/blocks`,
  /** Block requests from a coordinator to a device (its students). */
  serve: (deviceId: string): string => `${dev(deviceId)}/serve`,
  coordinatorBlocks: (coordinatorId: string, suffix: string): string =>
    `${TOPIC_PREFIX}/coordinators/${level(coordinatorId, 'coordinator id')}/blocks/${level(suffix, 'suffix')}`,
  coordinatorBlocksPrefix: (coordinatorId: string): string => `${TOPIC_PREFIX}/coordinators/${level(coordinatorId, 'coordinator id')}/blocks`,
  /** A device's report for a round (an update to pull, or a failure). */
  roundReport: (roundId: string, deviceId: string): string => `${TOPIC_PREFIX}/rounds/${level(roundId, 'round id')}/updates/${level(deviceId, 'device id')}`,
  /** Retained once a round closes. */
  roundResult: (roundId: string): string => `${TOPIC_PREFIX}/rounds/${level(roundId, 'round id')}/result`,
  /** Federated rounds: `rounds/{roundId}/…`. */
  round: (roundId: string, ...rest: string[]): string => [`${TOPIC_PREFIX}/rounds/${level(roundId, 'round id')}`, ...rest.map((r) => level(r, 'round sub-topic'))].join('/'),
} as const;

/** Filters a coordinator subscribes to; `$share` splits the load between coordinators. */
export const filters = {
  allStatus: `${TOPIC_PREFIX}/devices/+/status`,
  allTelemetry: `${TOPIC_PREFIX}/devices/+/telemetry`,
  allJobUpdates: `${TOPIC_PREFIX}/devices/+/jobs/+/update`,
  allRoundReports: `${TOPIC_PREFIX}/rounds/+/updates/+`,
  sharedPulls: (group = 'edgekt'): string => `$share/${level(group, 'share group')}/${TOPIC_PREFIX}/devices/+/pull`,
} as const;

export type DeviceTopic =
  | { kind: 'status' | 'telemetry' | 'jobs' | 'pull' | 'serve'; deviceId: string }
  | { kind: 'jobUpdate'; deviceId: string; jobId: string }
  | { kind: 'blocks'; deviceId: string; rest: string[] };

/** Parses a concrete `edgekt/v1/devices/{id}/…` topic; null for anything else. */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  const parts = topic.split('/');
  if (parts[0] !== 'edgekt' || parts[1] !== 'v1' || parts[2] !== 'devices') return null;
  const deviceId = parts[3];
  if (deviceId === undefined || !isTopicId(deviceId)) return null;
  const tail = parts.slice(4);
  const [a, b, c] = tail;
  if (tail.length === 1 && (a === 'status' || a === 'telemetry' || a === 'jobs' || a === 'pull' || a === 'serve')) return { kind: a, deviceId };
  if (tail.length === 3 && a === 'jobs' && b !== undefined && isTopicId(b) && c === 'update') return { kind: 'jobUpdate', deviceId, jobId: b };
  if (tail.length >= 2 && a === 'blocks' && tail.slice(1).every(isTopicId)) return { kind: 'blocks', deviceId, rest: tail.slice(1) };
  return null;
}

/** Parses `edgekt/v1/rounds/{roundId}/updates/{deviceId}`; null for anything else. */
export function parseRoundReportTopic(topic: string): { roundId: string; deviceId: string } | null {
  const p = topic.split('/');
  if (p.length !== 6 || p[0] !== 'edgekt' || p[1] !== 'v1' || p[2] !== 'rounds' || p[4] !== 'updates') return null;
  const [roundId, deviceId] = [p[3]!, p[5]!];
  return isTopicId(roundId) && isTopicId(deviceId) ? { roundId, deviceId } : null;
}

/** MQTT filter matching (`+`, `#`), with `$share/{group}/` stripped from the filter. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.startsWith('$share/') ? filter.split('/').slice(2) : filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return t.length >= i;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function under(prefix: string, topic: string): boolean {
  if (!topic.startsWith(prefix + '/')) return false;
  return topic.slice(prefix.length + 1).split('/').every(isTopicId);
}

/**
 * The coordinator's rule for a device's pull: answers go only under that device's own
 * `blocks/` namespace, derived from the request topic, so with broker ACLs a device can never
 * make a coordinator publish on anyone else's topics.
 */
export function allowPullResponse(requestTopic: string, responseTopic: string): boolean {
  const req = parseDeviceTopic(requestTopic);
  if (!req || req.kind !== 'pull') return false;
  return under(topics.deviceBlocksPrefix(req.deviceId), responseTopic);
}

/** The device's rule for a coordinator's `serve` request: answers go under some coordinator's `blocks/`. */
export function allowServeResponse(requestTopic: string, responseTopic: string): boolean {
  const req = parseDeviceTopic(requestTopic);
  if (!req || req.kind !== 'serve') return false;
  const parts = responseTopic.split('/');
  const cid = parts[3];
  if (parts[0] !== 'edgekt' || parts[1] !== 'v1' || parts[2] !== 'coordinators' || cid === undefined || !isTopicId(cid)) return false;
  return under(topics.coordinatorBlocksPrefix(cid), responseTopic);
}
