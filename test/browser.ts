/**
 * A real browser for the dashboard tests: Debian's `chromium` (scripts/setup.sh
 * installs it), driven headless by playwright-core, which downloads no
 * browser of its own. The binary is found on PATH (chromium,
 * chromium-browser, google-chrome), at its Debian path, or where
 * CHROMIUM_PATH says; none found fails with what to install.
 * `--no-sandbox`: the suite runs as root (CI too), where Chromium's sandbox
 * refuses to start.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

const NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
const PATHS = ['/usr/bin/chromium', '/usr/lib/chromium/chromium', '/snap/bin/chromium'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findChromium(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.CHROMIUM_PATH;
  if (given) {
    if (executable(given)) return given;
    throw new Error(`CHROMIUM_PATH=${given} is not an executable file`);
  }
  const onPath = (env.PATH ?? '').split(delimiter).filter(Boolean).flatMap((dir) => NAMES.map((n) => join(dir, n)));
  const found = [...onPath, ...PATHS].find(executable);
  if (!found) throw new Error('no chromium found for the dashboard browser tests: run scripts/setup.sh (apt-get install -y chromium), or set CHROMIUM_PATH');
  return found;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: findChromium(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}
