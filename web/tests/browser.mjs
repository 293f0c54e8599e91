// The Chromium every Playwright test of web/ drives: Debian's, headless, without the
// sandbox (tests run as root) and without background traffic.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.PULSE_CHROMIUM || '/usr/bin/chromium';

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    chromiumSandbox: false,
    headless: true,
    args: ['--disable-background-networking', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'],
  });
}
