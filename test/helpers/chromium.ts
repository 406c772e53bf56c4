/** Debian's headless Chromium, driven by playwright-core (CI installs the chromium package). */
import { type Browser, chromium } from "playwright-core";

/** How every browser test starts Chromium. */
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];

/** Launches /usr/bin/chromium headless. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
}
