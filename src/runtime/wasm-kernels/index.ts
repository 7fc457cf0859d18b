/**
 * Training kernels the tfjs 4.22 wasm backend lacks (filled in by the wasm-kernels work).
 * Idempotent: safe to call more than once.
 */
export function registerWasmTrainingKernels(): void {
  // placeholder until the kernels land
}
