import { describe, expect, it } from 'vitest';
import { allowPullResponse, allowServeResponse, filters, parseDeviceTopic, topicMatches, topics } from '../src/transport/topics.js';

describe('topics', () => {
  it('builds the fixed topic tree under edgekt/v1', () => {
    expect(topics.status('pi-01')).toBe('edgekt/v1/devices/pi-01/status');
    expect(topics.jobUpdate('pi-01', 'j1')).toBe('edgekt/v1/devices/pi-01/jobs/j1/update');
    expect(topics.pull('pi-01')).toBe('edgekt/v1/devices/pi-01/pull');
    expect(topics.deviceBlocks('pi-01', 'abc')).toBe('edgekt/v1/devices/pi-01/blocks/abc');
    expect(topics.coordinatorBlocks('c1', 'x')).toBe('edgekt/v1/coordinators/c1/blocks/x');
    expect(topics.round('r7', 'config')).toBe('edgekt/v1/rounds/r7/config');
    expect(filters.sharedPulls()).toBe('$share/edgekt/edgekt/v1/devices/+/pull');
  });
  it('refuses ids that are not one topic level', () => {
    for (const bad of ['', 'a/b', '+', '#', '$SYS', 'x y']) expect(() => topics.status(bad)).toThrow(TypeError);
  });
  it('parses device topics back', () => {
    expect(parseDeviceTopic('edgekt/v1/devices/pi-01/jobs/j1/update')).toEqual({ kind: 'jobUpdate', deviceId: 'pi-01', jobId: 'j1' });
    expect(parseDeviceTopic('edgekt/v1/devices/pi-01/blocks/a/b')).toEqual({ kind: 'blocks', deviceId: 'pi-01', rest: ['a', 'b'] });
    expect(parseDeviceTopic('edgekt/v1/devices/pi-01/other')).toBeNull();
    expect(parseDeviceTopic('edgekt/v2/devices/pi-01/status')).toBeNull();
  });
  it('matches filters, ignoring $share', () => {
    expect(topicMatches(filters.sharedPulls(), 'edgekt/v1/devices/pi-01/pull')).toBe(true);
    expect(topicMatches(filters.sharedPulls(), 'edgekt/v1/devices/pi-01/serve')).toBe(false);
    expect(topicMatches('a/#', 'a')).toBe(true);
    expect(topicMatches('a/#', 'a/b/c')).toBe(true);
    expect(topicMatches('a/+', 'a/b/c')).toBe(false);
  });
  it('allows pull answers only under the requesting device’s own blocks/ namespace', () => {
    const req = topics.pull('pi-01');
    expect(allowPullResponse(req, 'edgekt/v1/devices/pi-01/blocks/x1')).toBe(true);
    expect(allowPullResponse(req, 'edgekt/v1/devices/pi-02/blocks/x1')).toBe(false);
    expect(allowPullResponse(req, 'edgekt/v1/devices/pi-01/blocks')).toBe(false);
    expect(allowPullResponse(req, 'edgekt/v1/devices/pi-01/blocks/+')).toBe(false);
    expect(allowPullResponse(req, 'edgekt/v1/devices/pi-01/jobs')).toBe(false);
    expect(allowPullResponse(topics.serve('pi-01'), 'edgekt/v1/devices/pi-01/blocks/x1')).toBe(false);
  });
  it('allows serve answers only under a coordinator’s blocks/ namespace', () => {
    expect(allowServeResponse(topics.serve('pi-01'), 'edgekt/v1/coordinators/c1/blocks/r1')).toBe(true);
    expect(allowServeResponse(topics.serve('pi-01'), 'edgekt/v1/devices/pi-02/blocks/r1')).toBe(false);
    expect(allowServeResponse(topics.pull('pi-01'), 'edgekt/v1/coordinators/c1/blocks/r1')).toBe(false);
  });
});
