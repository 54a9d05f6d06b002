export * from './errors.js';
export * from './log.js';
export * from './metrics.js';
export * from './net.js';
export * from './codec.js';
