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

// A pulsed serving the built UI (web/dist) on a free port, and the browser: what each
// Playwright file starts once. `stop()` closes both.
export async function startUi() {
  const { ROOT, freePort, startServer, stopServer, waitReadyRaw } = await import('../../tests/e2e/helpers.mjs');
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const srv = await startServer({
    PULSE_LISTEN: `127.0.0.1:${port}`,
    PULSE_PUBLIC_ORIGIN: origin,
    PULSE_WEB_ROOT: `${ROOT}/web/dist`,
    PULSE_ACCESS_LOG: 'off',
  });
  let browser;
  try {
    await waitReadyRaw(srv);
    browser = await launchBrowser();
  } catch (e) {
    await stopServer(srv);
    throw e;
  }
  return {
    origin,
    srv,
    browser,
    async stop() {
      await browser.close();
      await stopServer(srv);
    },
  };
}
