/**
 * Builds the dashboard into dist/ (index.html + content-hashed assets/),
 * which the head serves as static files (packages/head/src/dashboard). No
 * asset comes from outside the machine: uPlot's stylesheet and every module
 * are bundled. JSX is Preact's (the automatic runtime).
 */
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 400 },
});
