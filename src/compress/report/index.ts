export * from './report.js';
export * from './chart.js';
