/**
 * Browser check of the HTML book: every page is loaded in headless
 * Chromium, driven over the Chrome DevTools Protocol (a WebSocket from
 * Deno; no puppeteer).
 *
 * For each `*.html` in the book folder it
 * - collects console errors (`console.error`, `console.assert`), uncaught
 *   exceptions and browser log errors (e.g. a script or image that failed
 *   to load),
 * - waits until the page's charts have been drawn (the book's loader sets
 *   `data-mv-charts="done"` on `<html>`),
 * - checks that every Vega-Lite chart container (`.mv-vega`) holds a
 *   drawn, non-empty `<svg>` or `<canvas>`, and that every inline SVG
 *   figure is non-empty (has elements and a non-zero box),
 * - saves a full-page screenshot to `screenshots/<page>.png` beside the
 *   pages,
 *
 * and fails with the list of problems.
 *
 * Usage: `deno run -A lib/tools/browser_check.ts [book-dir]`
 * (default `build/book`). Needs the Debian package `chromium`
 * (`apt-get install -y chromium`); `MEMVIRT_CHROMIUM` names another binary.
 *
 * @module
 */

import * as path from "node:path";

/** Debian package that provides the browser. */
export const CHROMIUM_PACKAGE = "chromium";

/** The command that installs it. */
export const CHROMIUM_INSTALL = `apt-get install -y ${CHROMIUM_PACKAGE}`;

/** Flags Chromium starts with (headless, quiet, no network side traffic). */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--hide-scrollbars",
  "--mute-audio",
];

const CANDIDATES = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
];

/**
 * Path of the Chromium binary (`MEMVIRT_CHROMIUM`, else the Debian
 * locations), or null when there is none.
 *
 * @example
 * ```ts
 * import { findChromium } from "./browser_check.ts";
 * import assert from "node:assert/strict";
 * const c = findChromium();
 * assert.ok(c === null || c.startsWith("/"));
 * ```
 */
export function findChromium(): string | null {
  const env = Deno.env.get("MEMVIRT_CHROMIUM");
  for (const c of env ? [env] : CANDIDATES) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch { /* not there */ }
  }
  return null;
}

/**
 * The message shown when Chromium is missing.
 *
 * @example
 * ```ts
 * import { missingChromiumMessage } from "./browser_check.ts";
 * import assert from "node:assert/strict";
 * assert.match(missingChromiumMessage(), /apt-get install -y chromium/);
 * ```
 */
export function missingChromiumMessage(): string {
  return "headless Chromium not found (looked for " +
    `${CANDIDATES.join(", ")}, or $MEMVIRT_CHROMIUM); install it with: ` +
    CHROMIUM_INSTALL;
}

// ---------------------------------------------------------------------------
// CDP client

type Json = Record<string, unknown>;

interface Pending {
  resolve: (v: Json) => void;
  reject: (e: Error) => void;
  method: string;
}

/** A minimal Chrome DevTools Protocol client over one WebSocket. */
class Cdp {
  readonly #ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners:
    ((method: string, params: Json, session?: string) => void)[] = [];
  #closed: Error | null = null;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data));
      if (typeof msg.id === "number") {
        const p = this.#pending.get(msg.id);
        if (!p) return;
        this.#pending.delete(msg.id);
        if (msg.error) {
          p.reject(new Error(`${p.method}: ${msg.error.message}`));
        } else p.resolve(msg.result ?? {});
      } else if (typeof msg.method === "string") {
        for (const l of this.#listeners) {
          l(msg.method, msg.params ?? {}, msg.sessionId);
        }
      }
    };
    ws.onclose = () => this.#fail(new Error("DevTools connection closed"));
    ws.onerror = () => this.#fail(new Error("DevTools connection error"));
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  static connect(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Cdp(ws));
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
  }

  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#next++;
    const msg: Json = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, method });
      this.#ws.send(JSON.stringify(msg));
    });
  }

  on(l: (method: string, params: Json, session?: string) => void): () => void {
    this.#listeners.push(l);
    return () => {
      const i = this.#listeners.indexOf(l);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  close(): void {
    this.#closed ??= new Error("closed");
    try {
      this.#ws.close();
    } catch { /* already closed */ }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A running headless Chromium and a CDP connection to it. */
class Browser {
  private constructor(
    readonly child: Deno.ChildProcess,
    readonly cdp: Cdp,
    readonly profile: string,
  ) {}

  static async launch(binary: string): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "memvirt-chromium-" });
    const child = new Deno.Command(binary, {
      args: [
        ...CHROMIUM_FLAGS,
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Chromium writes "<port>\n<browser path>" to DevToolsActivePort.
    const file = path.join(profile, "DevToolsActivePort");
    let ws: string | null = null;
    for (let i = 0; i < 300 && ws === null; i++) {
      try {
        const [port, p] = Deno.readTextFileSync(file).split("\n");
        if (port && p) ws = `ws://127.0.0.1:${port.trim()}${p.trim()}`;
      } catch { /* not yet */ }
      if (ws === null) await sleep(100);
    }
    if (ws === null) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw new Error(`${binary} did not start its DevTools endpoint in 30 s`);
    }
    const cdp = await Cdp.connect(ws);
    return new Browser(child, cdp, profile);
  }

  async close(): Promise<void> {
    try {
      await Promise.race([this.cdp.send("Browser.close"), sleep(3000)]);
    } catch { /* closing anyway */ }
    this.cdp.close();
    const done = await Promise.race([
      this.child.status.then(() => true),
      sleep(5000).then(() => false),
    ]);
    if (!done) {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
      await this.child.status;
    }
    await Deno.remove(this.profile, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// checking pages

/** Result for one page. */
export interface PageReport {
  /** File name of the page (e.g. `01-vmm.html`). */
  readonly page: string;
  /** Problems found; empty when the page passed. */
  readonly problems: readonly string[];
  /** Vega-Lite chart containers found. */
  readonly charts: number;
  /** Charts drawn interactively by vega-embed. */
  readonly interactive: number;
  /** Inline SVG figures found (outside charts). */
  readonly figures: number;
  /** Path of the screenshot, or null when none was taken. */
  readonly screenshot: string | null;
}

/** Result of {@linkcode checkBook}. */
export interface BookReport {
  /** True when every page passed. */
  readonly ok: boolean;
  /** One entry per page, in file-name order. */
  readonly pages: readonly PageReport[];
}

/** Options of {@linkcode checkBook}. */
export interface CheckOptions {
  /** Pages to check, as file names in the folder (default: every `*.html`). */
  pages?: readonly string[];
  /** Screenshot folder (default `<dir>/screenshots`); null: none. */
  screenshots?: string | null;
  /** Seconds to wait for a page's charts (default 30). */
  chartTimeout?: number;
  /** Chromium binary (default {@linkcode findChromium}). */
  chromium?: string;
  /** Viewport width in CSS pixels (default 1200). */
  width?: number;
}

/** In-page inspection; returns JSON (runs in the browser). */
const INSPECT = `(() => {
  const problems = [];
  const nonEmptySvg = (svg) => {
    if (!svg || svg.childElementCount === 0) return false;
    try {
      const b = svg.getBBox();
      if (b.width > 0 && b.height > 0) return true;
    } catch (e) { /* not rendered */ }
    const r = svg.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && svg.querySelector("path,rect,text,line,circle,polygon,polyline,ellipse,image") !== null;
  };
  const charts = [...document.querySelectorAll(".mv-vega")];
  let interactive = 0;
  charts.forEach((c, i) => {
    const label = "chart " + (i + 1) + (c.id ? " (#" + c.id + ")" : "");
    const target = c.querySelector(".mv-vega-embed");
    const svg = target && target.querySelector("svg");
    const canvas = target && target.querySelector("canvas");
    const drawn = (svg && nonEmptySvg(svg)) || (canvas && canvas.width > 0 && canvas.height > 0);
    if (drawn) { interactive++; return; }
    problems.push(label + ": vega container has no drawn svg or canvas (state: " + (c.dataset.mvChart || "not rendered") + ")");
  });
  const figures = [...document.querySelectorAll("svg")].filter((s) =>
    !s.closest(".mv-vega") && !s.parentElement.closest("svg"));
  figures.forEach((s, i) => {
    if (!nonEmptySvg(s)) {
      const where = s.closest("[data-mime-type]");
      problems.push("inline SVG figure " + (i + 1) + (where ? " (" + where.dataset.mimeType + ")" : "") + " is empty");
    }
  });
  return JSON.stringify({ problems, charts: charts.length, interactive, figures: figures.length });
})()`;

function describeRemote(obj: Json | undefined): string {
  if (!obj) return "";
  if (typeof obj.value === "string") return obj.value;
  if (obj.value !== undefined) return JSON.stringify(obj.value);
  return String(obj.description ?? obj.type ?? "");
}

async function checkPage(
  browser: Browser,
  file: string,
  shotDir: string | null,
  opts: { chartTimeout: number; width: number },
): Promise<PageReport> {
  const cdp = browser.cdp;
  const page = path.basename(file);
  const problems: string[] = [];
  const { targetId } = await cdp.send("Target.createTarget", {
    url: "about:blank",
  }) as { targetId: string };
  const { sessionId } = await cdp.send("Target.attachToTarget", {
    targetId,
    flatten: true,
  }) as { sessionId: string };
  let loaded!: () => void;
  const loadedP = new Promise<void>((r) => loaded = r);
  const off = cdp.on((method, p, session) => {
    if (session !== sessionId) return;
    if (method === "Page.loadEventFired") loaded();
    else if (method === "Runtime.consoleAPICalled") {
      const type = String(p.type);
      if (type === "error" || type === "assert") {
        const args = (p.args as Json[] | undefined ?? []).map(describeRemote);
        problems.push(`console.${type}: ${args.join(" ")}`);
      }
    } else if (method === "Runtime.exceptionThrown") {
      const d = p.exceptionDetails as Json;
      const ex = d.exception as Json | undefined;
      problems.push(
        `uncaught exception: ${
          describeRemote(ex) || String(d.text)
        } (line ${d.lineNumber}:${d.columnNumber}${
          d.url ? ` of ${d.url}` : ""
        })`,
      );
    } else if (method === "Log.entryAdded") {
      const e = p.entry as Json;
      if (e.level === "error") {
        problems.push(
          `browser log (${e.source}): ${e.text}${e.url ? ` ${e.url}` : ""}`,
        );
      }
    }
  });
  let screenshot: string | null = null;
  let charts = 0, interactive = 0, figures = 0;
  try {
    const s = (m: string, p: Json = {}) => cdp.send(m, p, sessionId);
    await s("Page.enable");
    await s("Runtime.enable");
    await s("Log.enable");
    await s("Emulation.setDeviceMetricsOverride", {
      width: opts.width,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    });
    const nav = await s("Page.navigate", {
      url: new URL(`file://${path.resolve(file)}`).href,
    });
    if (nav.errorText) problems.push(`cannot load: ${nav.errorText}`);
    const ok = await Promise.race([
      loadedP.then(() => true),
      sleep(30_000).then(() => false),
    ]);
    if (!ok) problems.push("page did not finish loading in 30 s");
    // wait for the chart loader (only pages with charts have one running)
    const deadline = Date.now() + opts.chartTimeout * 1000;
    for (;;) {
      const r = await s("Runtime.evaluate", {
        expression: `document.querySelectorAll(".mv-vega").length === 0 ||
          document.documentElement.dataset.mvCharts === "done"`,
        returnByValue: true,
      }) as { result: { value?: unknown } };
      if (r.result.value === true) break;
      if (Date.now() > deadline) {
        problems.push(
          `charts not finished after ${opts.chartTimeout} s (no data-mv-charts="done")`,
        );
        break;
      }
      await sleep(100);
    }
    await sleep(150); // let late console messages arrive
    const r = await s("Runtime.evaluate", {
      expression: INSPECT,
      returnByValue: true,
    }) as { result: { value?: unknown } };
    const found = JSON.parse(String(r.result.value));
    problems.push(...found.problems);
    charts = found.charts;
    interactive = found.interactive;
    figures = found.figures;
    if (shotDir !== null) {
      const m = await s("Page.getLayoutMetrics") as {
        cssContentSize?: { width: number; height: number };
        contentSize: { width: number; height: number };
      };
      const size = m.cssContentSize ?? m.contentSize;
      const height = Math.min(Math.ceil(size.height), 30000);
      const shot = await s("Page.captureScreenshot", {
        format: "png",
        captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: opts.width, height, scale: 1 },
      }) as { data: string };
      await Deno.mkdir(shotDir, { recursive: true });
      screenshot = path.join(shotDir, page.replace(/\.html?$/, "") + ".png");
      const bin = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
      await Deno.writeFile(screenshot, bin);
    }
  } catch (err) {
    problems.push(`check failed: ${err instanceof Error ? err.message : err}`);
  } finally {
    off();
    await cdp.send("Target.closeTarget", { targetId }).catch(() => {});
  }
  return { page, problems, charts, interactive, figures, screenshot };
}

/**
 * Check every page of a built book in headless Chromium (see the module
 * doc). Throws `Error` with {@linkcode missingChromiumMessage} when
 * Chromium is missing, `RangeError` when the folder has no pages.
 *
 * @example
 * ```ts ignore
 * const report = await checkBook("build/book");
 * console.log(formatReport(report));
 * ```
 */
export async function checkBook(
  dir: string,
  options: CheckOptions = {},
): Promise<BookReport> {
  const chromium = options.chromium ?? findChromium();
  if (chromium === null) throw new Error(missingChromiumMessage());
  let pages = options.pages ? [...options.pages] : [];
  if (!options.pages) {
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isFile && e.name.endsWith(".html")) pages.push(e.name);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    pages = pages.sort();
  }
  if (pages.length === 0) {
    throw new RangeError(`no HTML pages to check in ${dir}`);
  }
  const shotDir = options.screenshots === undefined
    ? path.join(dir, "screenshots")
    : options.screenshots;
  const browser = await Browser.launch(chromium);
  const reports: PageReport[] = [];
  try {
    for (const p of pages) {
      reports.push(
        await checkPage(browser, path.join(dir, p), shotDir, {
          chartTimeout: options.chartTimeout ?? 30,
          width: options.width ?? 1200,
        }),
      );
    }
  } finally {
    await browser.close();
  }
  return { ok: reports.every((r) => r.problems.length === 0), pages: reports };
}

/**
 * A report as text: one line per page, its problems indented under it.
 *
 * @example
 * ```ts
 * import { formatReport } from "./browser_check.ts";
 * import assert from "node:assert/strict";
 * const text = formatReport({ ok: false, pages: [
 *   { page: "a.html", problems: ["console.error: boom"], charts: 1, interactive: 1, figures: 2, screenshot: null },
 * ] });
 * assert.match(text, /FAIL a\.html: 1 chart/);
 * assert.match(text, /  - console\.error: boom/);
 * ```
 */
export function formatReport(report: BookReport): string {
  const lines = report.pages.flatMap((r) => [
    `${r.problems.length ? "FAIL" : "ok  "} ${r.page}: ${r.charts} chart${
      r.charts === 1 ? "" : "s"
    } (${r.interactive} interactive), ${r.figures} SVG figure${
      r.figures === 1 ? "" : "s"
    }${r.screenshot ? `, screenshot ${r.screenshot}` : ""}`,
    ...r.problems.map((p) => `  - ${p}`),
  ]);
  const bad = report.pages.filter((r) => r.problems.length).length;
  lines.push(
    bad
      ? `browser check: ${bad} of ${report.pages.length} page(s) failed`
      : `browser check: all ${report.pages.length} page(s) ok`,
  );
  return lines.join("\n");
}

if (import.meta.main) {
  const dir = Deno.args[0] ?? "build/book";
  try {
    const report = await checkBook(dir);
    console.log(formatReport(report));
    Deno.exit(report.ok ? 0 : 1);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    Deno.exit(1);
  }
}
