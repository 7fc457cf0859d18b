/** Injected time source: libraries take a Clock so tests can fake time. */
export interface Clock {
  now(): number;
  /** High-resolution monotonic milliseconds, for latency measurements. */
  hrMs(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  hrMs: () => performance.now(),
};
