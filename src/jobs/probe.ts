import { createLatencyProbe } from '../bench/latency.js';
import type { CostProbe } from '../compress/budget.js';
import type { CompressJobSpec } from '../config/job-spec.js';

/** The probe a compression job measures with on this device: batch-1 latency, `spec.runs` timed runs. */
export function jobProbe(spec: Pick<CompressJobSpec, 'runs'> | { runs?: number }): CostProbe {
  return createLatencyProbe({ runs: spec.runs ?? 30, warmup: 5 });
}
