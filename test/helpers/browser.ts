// Launching Debian's Chromium through playwright-core (which never downloads a browser), and
// deciding what to do when it is missing: skip with a notice, or fail when CI is set.
import { accessSync, constants } from 'node:fs'
import t from 'tap'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

/** The Chromium binary: Debian's package, unless CHROMIUM_PATH names another one. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

export interface Availability {
  /** Why the browser tests are skipped, or false when they run. */
  skip: string | false
  /** Why the browser tests fail outright (CI without Chromium), if they do. */
  failure?: string
}

/**
 * Browser tests run when Chromium is installed. Without it they are skipped with a notice on
 * stderr naming the binary, except under CI, where a missing Chromium is a failure.
 */
export function browserAvailability (): Availability {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK)
    return { skip: false }
  } catch {
    const missing = `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`
    if (process.env.CI) return { skip: false, failure: `${missing}; CI requires the browser tests` }
    console.error(`\nNOTICE: skipping the browser tests: ${missing}\n`)
    return { skip: `browser tests skipped: ${missing}` }
  }
}

/**
 * One Chromium for the whole test file, launched before its first test and closed after the
 * last. `skip` goes in each browser test's options: a notice when Chromium is missing, or the
 * reason for the failure already reported under CI.
 */
export function useChromium (): { skip: string | false, browser: () => Browser } {
  const { skip, failure } = browserAvailability()
  if (failure !== undefined) t.fail(failure)
  let browser: Browser | undefined
  if (skip === false && failure === undefined) {
    t.before(async () => { browser = await launchChromium() })
    t.teardown(() => browser?.close())
  }
  return { skip: failure ?? skip, browser: () => browser! }
}

export function launchChromium (): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 })
}

/**
 * Opens a page in a fresh context (its own connection pool and cookies) at `url`. Uncaught page
 * errors are collected in `errors` for the test to check. Close the context when done.
 */
export async function openPage (
  browser: Browser,
  url: string,
  viewport = { width: 1280, height: 900 }
): Promise<{ context: BrowserContext, page: Page, errors: string[] }> {
  const context = await browser.newContext({ viewport })
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(String(error)))
  page.setDefaultTimeout(15_000)
  await page.goto(url)
  return { context, page, errors }
}
