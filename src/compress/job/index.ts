export { runCompressJob, type CompressJobDeps, type CompressJobResult } from './run.js';
export { checkRunIdentity, runFingerprint, RUN_STAGE } from './identity.js';
export { writeJobOutputs, JOB_OUTPUTS } from './outputs.js';
