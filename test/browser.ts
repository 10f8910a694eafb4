// Chromium for browser tests: the Debian binary driven by playwright-core (no downloaded browsers).
// Tests skip only when chromium is missing outside CI; under CI (`process.env.CI`) a missing chromium fails them.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";
export const ARTIFACTS_DIR = join(import.meta.dir, "..", "test-artifacts");

/** True when the system chromium is installed. */
export function browserAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/** True when browser tests should be skipped: no chromium and not under CI (where they must run and fail loudly). */
export function skipBrowserTests(): boolean {
  return !browserAvailable() && !process.env.CI;
}

/** Launch headless chromium with the background services that would reach the network turned off. */
export function launchBrowser(): Promise<Browser> {
  if (!browserAvailable()) throw new Error(`chromium not found at ${CHROMIUM_PATH} (apt-get install chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** Write a full-page PNG to test-artifacts/<name>.png (git-ignored) and return its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name.replace(/[^\w.-]+/g, "-")}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
