export * from './layer-specs.js';
export * from './model-json.js';
export * from './graph.js';
export * from './validate.js';
export * from './io.js';
export * from './logits.js';
export * from './dependency-graph.js';
export { evaluateAccuracy } from './accuracy.js';
