export { startHead, type Head } from './head.js';
export { headConfigSchema, headOptions, loadHeadConfig, tokenPath, type HeadConfig } from './config.js';
export * from './state/index.js';
