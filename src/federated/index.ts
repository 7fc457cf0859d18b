export * from './weights.js';
export * from './index-map.js';
