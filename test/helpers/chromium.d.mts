/** Types for chromium.mjs (plain JS, shared with bench/). */
import type { BrowserContext, Page } from 'playwright-core';

/** The Chromium binary the page tests drive, or null when none is installed. */
export const CHROMIUM: string | null;
/** A headless Chromium with a throw-away profile, or null when none is installed. */
export function launchChromium(): Promise<{ context: BrowserContext; newPage(): Promise<Page>; close(): Promise<void> } | null>;
