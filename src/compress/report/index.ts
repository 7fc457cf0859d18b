export * from './report.js';
export * from './budget-table.js';
export * from './chart.js';
