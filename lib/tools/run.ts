/**
 * Project toolchain: `deno task test`, `deno task book`, `deno task strip`.
 *
 * Usage: `deno run -A lib/tools/run.ts <setup|test [--quick]|book|strip>`
 *
 * - `setup`: make sure the Debian Jupyter tools and Chromium are installed
 *   (installing them with apt-get when that is possible) and that a Jupyter
 *   kernel named `deno` is registered.
 * - `test`: fmt, lint, type check, doc lint, setup, unit and doc tests, the
 *   notebook tests, then the HTML book built from the notebooks the tests
 *   executed, checked in headless Chromium (`--quick` skips setup,
 *   notebooks and book).
 * - `book [--no-check]`: execute `notebooks/*.ipynb` with the Deno kernel,
 *   write an HTML book to `build/book/` (charts drawn with vega-embed from
 *   `build/book/assets/`), then check every page in headless Chromium
 *   ({@link ./browser_check.ts}; screenshots in `build/book/screenshots/`).
 * - `strip`: remove outputs and execution counts from `notebooks/*.ipynb`.
 *
 * Notebooks are executed by `lib/tools/nbrun.py` (jupyter_client, not
 * nbclient: Deno's kernel may publish a result after reporting `idle`,
 * which nbclient loses). nbconvert is only used to turn executed notebooks
 * into HTML. Every deno invocation uses {@linkcode Deno.execPath}, so the
 * whole toolchain runs on the Deno that started it (e.g. `npx deno@2.9.6`).
 *
 * This module is also imported by `tests/notebooks_test.ts` for the
 * prerequisite check and the notebook runner.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import * as path from "node:path";
import {
  checkBook,
  CHROMIUM_PACKAGE,
  findChromium,
  formatReport,
  missingChromiumMessage,
} from "./browser_check.ts";

/** Absolute path of the repository root (with no trailing slash). */
export const ROOT: string = fileURLToPath(new URL("../..", import.meta.url))
  .replace(/\/$/, "");
/** The Debian Python that has the Jupyter modules (not a pyenv one). */
export const PYTHON = "/usr/bin/python3";
/** The Debian `jupyter` command. */
export const JUPYTER = "/usr/bin/jupyter";
/** The notebook executor. */
export const NBRUN: string = path.join(ROOT, "lib/tools/nbrun.py");
/** Folder of the chapter notebooks. */
export const NOTEBOOKS_DIR: string = path.join(ROOT, "notebooks");
/** Debian packages that provide the Jupyter tools. */
export const APT_PACKAGES: readonly string[] = [
  "jupyter-nbconvert",
  "python3-nbclient",
  "jupyter-client",
  "python3-notebook",
];
/** Python modules the runner and the book need. */
export const PY_MODULES: readonly string[] = [
  "nbclient",
  "jupyter_client",
  "nbconvert",
  "nbformat",
];
/** Name of the Jupyter kernel the notebooks run on. */
export const KERNEL = "deno";

const APT_COMMAND = `apt-get update && apt-get install -y ${
  APT_PACKAGES.join(" ")
}`;

/** Environment for Debian Python tools (quiet debugpy's start-up warning). */
function pyEnv(): Record<string, string> {
  return { PYDEVD_DISABLE_FILE_VALIDATION: "1" };
}

// ---------------------------------------------------------------------------
// subprocess helpers

interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
}

/** Run a command with inherited stdio; resolve to its exit code. */
async function run(
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<number> {
  try {
    const child = new Deno.Command(cmd, {
      args,
      cwd: opts.cwd ?? ROOT,
      env: opts.env,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    return (await child.status).code;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      console.error(`not found: ${cmd}`);
      return 127;
    }
    throw err;
  }
}

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command and capture its output (code 127 when not found). */
async function capture(
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<Captured> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      cwd: opts.cwd ?? ROOT,
      env: opts.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `not found: ${cmd}` };
    }
    throw err;
  }
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// prerequisites

/** What the notebook tools need, and what is missing. */
export interface Prerequisites {
  /** The Debian Python imports nbclient, jupyter_client, nbconvert, nbformat. */
  jupyterTools: boolean;
  /** argv of the registered `deno` kernel, or null when there is none. */
  kernelArgv: string[] | null;
  /** The kernel's deno binary exists. */
  kernelOk: boolean;
  /** Human-readable list of what is missing; empty when all is well. */
  problems: string[];
}

/** Check (without installing anything) for Jupyter tools and the kernel. */
export async function checkPrerequisites(): Promise<Prerequisites> {
  const problems: string[] = [];
  const imp = await capture(PYTHON, [
    "-c",
    `import ${PY_MODULES.join(", ")}`,
  ], { env: pyEnv() });
  const jupyterTools = imp.code === 0 && exists(JUPYTER);
  if (!jupyterTools) {
    problems.push(
      `Jupyter tools (${PYTHON} cannot import ${
        PY_MODULES.join(", ")
      } or ${JUPYTER} is missing; Debian packages: ${APT_PACKAGES.join(" ")})`,
    );
  }
  let kernelArgv: string[] | null = null;
  let kernelOk = false;
  if (jupyterTools) {
    const ks = await capture(JUPYTER, ["kernelspec", "list", "--json"], {
      env: pyEnv(),
    });
    if (ks.code === 0) {
      try {
        const specs = JSON.parse(ks.stdout).kernelspecs ?? {};
        kernelArgv = specs[KERNEL]?.spec?.argv ?? null;
      } catch {
        kernelArgv = null;
      }
    }
    kernelOk = kernelArgv !== null && kernelArgv.length > 0 &&
      exists(kernelArgv[0]);
    if (kernelArgv === null) {
      problems.push(
        `Jupyter kernel "${KERNEL}" (register it with: deno jupyter --install)`,
      );
    } else if (!kernelOk) {
      problems.push(
        `Jupyter kernel "${KERNEL}" points to a missing binary ${
          kernelArgv[0]
        } (re-register with: deno jupyter --install --force)`,
      );
    }
  } else {
    problems.push(`Jupyter kernel "${KERNEL}" (needs the Jupyter tools first)`);
  }
  return { jupyterTools, kernelArgv, kernelOk, problems };
}

/** How apt-get can be run here: as root, through passwordless sudo, or not. */
async function aptPrefix(): Promise<string[] | null> {
  if (!exists("/usr/bin/apt-get")) return null;
  if (Deno.uid() === 0) return [];
  const sudo = await capture("sudo", ["-n", "true"]);
  return sudo.code === 0 ? ["sudo", "-n"] : null;
}

class SetupError extends Error {}

/** Install Jupyter tools if needed and possible, then register the kernel. */
export async function setup(): Promise<void> {
  let pre = await checkPrerequisites();
  if (!pre.jupyterTools) {
    const prefix = await aptPrefix();
    if (prefix === null) {
      throw new SetupError(
        [
          "The Jupyter tools are missing and apt-get cannot be used here",
          "(not root and no passwordless sudo).",
          `Install these Debian packages: ${APT_PACKAGES.join(" ")}`,
          `e.g.: sudo sh -c '${APT_COMMAND}'`,
        ].join("\n"),
      );
    }
    console.log(`installing Debian packages: ${APT_PACKAGES.join(" ")}`);
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    const [cmd, ...pre1] = [...prefix, "apt-get"];
    if (await run(cmd, [...pre1, "update"], { env }) !== 0) {
      throw new SetupError("apt-get update failed");
    }
    const code = await run(cmd, [
      ...pre1,
      "install",
      "-y",
      ...APT_PACKAGES,
    ], { env });
    if (code !== 0) throw new SetupError("apt-get install failed");
    pre = await checkPrerequisites();
    if (!pre.jupyterTools) {
      throw new SetupError(
        `installed, but still missing: ${pre.problems.join("; ")}`,
      );
    }
  }
  console.log(`Jupyter tools: ok (${PYTHON}, ${JUPYTER})`);
  if (!pre.kernelOk) {
    console.log(
      `registering the Deno Jupyter kernel: ${Deno.execPath()} jupyter --install --force`,
    );
    const code = await run(Deno.execPath(), [
      "jupyter",
      "--install",
      "--force",
    ]);
    pre = await checkPrerequisites();
    if (code !== 0 || !pre.kernelOk) {
      throw new SetupError(
        `could not register the Deno kernel: ${pre.problems.join("; ")}`,
      );
    }
  }
  const kernelDeno = pre.kernelArgv![0];
  console.log(`Deno kernel: ok (${kernelDeno})`);
  await setupChromium();
  if (path.resolve(kernelDeno) !== Deno.execPath()) {
    const v = await capture(kernelDeno, ["--version"]);
    const kernelVersion = v.stdout.split("\n")[0].trim();
    if (!kernelVersion.startsWith(`deno ${Deno.version.deno} `)) {
      console.log(
        `  note: the kernel runs ${kernelVersion || "an unknown deno"}` +
          `, this run is deno ${Deno.version.deno}` +
          ` (re-register with: deno jupyter --install --force)`,
      );
    }
  }
}

/**
 * Install Chromium (for the book's browser check) with apt-get when it is
 * missing and apt-get can be used; otherwise only say what to install (the
 * browser check then fails with the same message).
 */
async function setupChromium(): Promise<void> {
  let chromium = findChromium();
  if (chromium === null) {
    const prefix = await aptPrefix();
    if (prefix === null) {
      console.log(`note: ${missingChromiumMessage()}`);
      return;
    }
    console.log(`installing Debian package: ${CHROMIUM_PACKAGE}`);
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    const [cmd, ...pre1] = [...prefix, "apt-get"];
    let code = await run(cmd, [...pre1, "install", "-y", CHROMIUM_PACKAGE], {
      env,
    });
    if (code !== 0) {
      await run(cmd, [...pre1, "update"], { env });
      code = await run(cmd, [...pre1, "install", "-y", CHROMIUM_PACKAGE], {
        env,
      });
    }
    chromium = findChromium();
    if (code !== 0 || chromium === null) {
      throw new SetupError(
        `could not install Chromium: ${missingChromiumMessage()}`,
      );
    }
  }
  console.log(`Chromium: ok (${chromium})`);
}

// ---------------------------------------------------------------------------
// notebooks

/** Absolute paths of `notebooks/*.ipynb`, sorted by name. */
export function listNotebooks(dir: string = NOTEBOOKS_DIR): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.endsWith(".ipynb")) {
        out.push(path.join(dir, e.name));
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** An error as reported by nbrun.py (ANSI codes already stripped). */
export interface CellError {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** The JSON summary printed by nbrun.py. */
export interface RunSummary {
  notebook: string;
  output: string;
  kernel: string;
  ok: boolean;
  cells: {
    index: number;
    execution_count: number | null;
    mime: string[];
    output_types: string[];
    late_outputs: number;
    max_late_ms: number;
    error: CellError | null;
  }[];
  error: (CellError & { cell: number | null }) | null;
  executed?: number;
  code_cells?: number;
  seconds?: number;
}

/** Result of {@linkcode runNotebook}. */
export interface RunResult {
  ok: boolean;
  code: number;
  /** null when nbrun.py printed no parsable summary. */
  summary: RunSummary | null;
  stderr: string;
}

/** Options of {@linkcode runNotebook}. */
export interface RunNotebookOptions {
  /** Seconds to keep reading IOPub after a cell's idle (env MEMVIRT_NB_GRACE, 0.5). */
  grace?: number;
  /** Seconds per cell (env MEMVIRT_NB_TIMEOUT, 300). */
  timeout?: number;
  /** Kernel name ("deno"). */
  kernel?: string;
}

function envNumber(name: string, fallback: number): number {
  const v = Number(Deno.env.get(name));
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** Execute one notebook with nbrun.py into `output`. */
export async function runNotebook(
  input: string,
  output: string,
  opts: RunNotebookOptions = {},
): Promise<RunResult> {
  const grace = opts.grace ?? envNumber("MEMVIRT_NB_GRACE", 0.5);
  const timeout = opts.timeout ?? envNumber("MEMVIRT_NB_TIMEOUT", 300);
  const res = await capture(PYTHON, [
    NBRUN,
    input,
    output,
    "--grace",
    String(grace),
    "--timeout",
    String(timeout),
    "--kernel",
    opts.kernel ?? KERNEL,
  ], { env: pyEnv() });
  let summary: RunSummary | null = null;
  try {
    summary = JSON.parse(res.stdout);
  } catch {
    summary = null;
  }
  return {
    ok: res.code === 0 && summary?.ok === true,
    code: res.code,
    summary,
    stderr: res.stderr,
  };
}

/** Text describing a failed run: the failing cell's source and traceback. */
export function describeFailure(input: string, res: RunResult): string {
  const lines = [`${path.relative(ROOT, input)}: execution failed`];
  const err = res.summary?.error;
  if (err) {
    if (err.cell !== null) {
      lines.push(`--- cell ${err.cell} ---`);
      try {
        const nb = JSON.parse(Deno.readTextFileSync(input));
        const src = nb.cells?.[err.cell]?.source;
        lines.push(Array.isArray(src) ? src.join("") : String(src ?? ""));
      } catch {
        lines.push("(source not readable)");
      }
    }
    lines.push(`--- ${err.ename}: ${err.evalue} ---`);
    lines.push(...err.traceback);
  } else {
    lines.push(`nbrun.py exit code ${res.code}, no summary`);
  }
  const stderr = res.stderr.split("\n").filter((l) =>
    l.trim() && !l.includes('"deno jupyter" is unstable')
  );
  if (stderr.length) lines.push("--- stderr ---", ...stderr.slice(-30));
  return lines.join("\n");
}

/** The first markdown heading of a notebook, or null. */
export function notebookTitle(nb: {
  cells?: { cell_type: string; source: string | string[] }[];
}): string | null {
  for (const cell of nb.cells ?? []) {
    if (cell.cell_type !== "markdown") continue;
    const src = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
    for (const line of src.split("\n")) {
      const m = /^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
      if (m) return m[1].replace(/[`*]|(?<!\w)_|_(?!\w)/g, "").trim();
    }
  }
  return null;
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[
        c
      ]!,
  );
}

// ---------------------------------------------------------------------------
// commands

function header(step: string, detail: string): void {
  console.log(`\n=== ${step}: ${detail}`);
}

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

/** Count test cases in a deno JUnit report (missing file: zeros). */
function junitCounts(file: string): Counts {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  let xml: string;
  try {
    xml = Deno.readTextFileSync(file);
  } catch {
    return counts;
  }
  for (const chunk of xml.split("<testcase ").slice(1)) {
    const body = chunk.split("</testcase>")[0];
    if (/<(failure|error)\b/.test(body)) counts.failed++;
    else if (/<skipped\b/.test(body)) counts.skipped++;
    else counts.passed++;
  }
  return counts;
}

/** Where `deno task book` (and `deno task test`) write the book. */
export const BOOK_DIR: string = path.join(ROOT, "build/book");

/** Browser builds shipped in `build/book/assets/` for interactive charts. */
export const CHART_ASSETS: readonly { pkg: string; file: string }[] = [
  { pkg: "vega", file: "build/vega.min.js" },
  { pkg: "vega-lite", file: "build/vega-lite.min.js" },
  { pkg: "vega-embed", file: "build/vega-embed.min.js" },
];

/** The version of an npm package pinned in deno.json's imports. */
function pinnedVersion(pkg: string): string {
  const cfg = JSON.parse(Deno.readTextFileSync(path.join(ROOT, "deno.json")));
  const spec = String(cfg.imports?.[pkg] ?? "");
  const m = /^npm:(?:@[^/]+\/)?[^@]+@([^/]+)$/.exec(spec);
  if (!m) {
    throw new Error(`deno.json imports has no pinned "npm:${pkg}@<version>"`);
  }
  return m[1];
}

/** Where an npm package's files are: node_modules, else Deno's npm cache. */
async function npmPackageDir(pkg: string, version: string): Promise<string[]> {
  const dirs = [path.join(ROOT, "node_modules", pkg)];
  const info = await capture(Deno.execPath(), ["info", "--json"]);
  try {
    const cache = JSON.parse(info.stdout).npmCache;
    if (typeof cache === "string") {
      dirs.push(path.join(cache, "registry.npmjs.org", pkg, version));
    }
  } catch { /* no cache location */ }
  return dirs;
}

/**
 * Copy the vega, vega-lite and vega-embed browser builds (and their
 * licences) from the npm packages pinned in deno.json into
 * `<outDir>/assets/`, fetching the packages into Deno's cache first when
 * needed. Returns the copied paths.
 */
export async function copyChartAssets(outDir: string): Promise<string[]> {
  const assets = path.join(outDir, "assets");
  Deno.mkdirSync(assets, { recursive: true });
  const copied: string[] = [];
  for (const { pkg, file } of CHART_ASSETS) {
    const version = pinnedVersion(pkg);
    const find = async () => {
      for (const dir of await npmPackageDir(pkg, version)) {
        if (exists(path.join(dir, file))) return dir;
      }
      return null;
    };
    let dir = await find();
    if (dir === null) {
      await capture(Deno.execPath(), ["cache", `npm:${pkg}@${version}`]);
      dir = await find();
    }
    if (dir === null) {
      throw new Error(
        `npm:${pkg}@${version} has no ${file} (tried node_modules and Deno's npm cache)`,
      );
    }
    const to = path.join(assets, path.basename(file));
    Deno.copyFileSync(path.join(dir, file), to);
    copied.push(to);
    for (const lic of ["LICENSE", "LICENSE.md", "LICENSE.txt"]) {
      if (exists(path.join(dir, lic))) {
        Deno.copyFileSync(
          path.join(dir, lic),
          path.join(assets, `${pkg}-LICENSE.txt`),
        );
        break;
      }
    }
  }
  return copied;
}

/** A chapter of the book. */
export interface Chapter {
  /** File name without `.ipynb` (the page is `<name>.html`). */
  name: string;
  /** Title shown on the contents page. */
  title: string;
}

/**
 * Turn executed notebooks (`<outDir>/executed/<name>.ipynb`) into HTML pages
 * with our nbconvert template, write the contents page and copy the chart
 * assets. Returns an exit code.
 */
export async function buildBook(
  chapters: readonly Chapter[],
  outDir: string = BOOK_DIR,
): Promise<number> {
  const executed = path.join(outDir, "executed");
  if (chapters.length) {
    console.log("converting to HTML (nbconvert) ...");
    const code = await run(JUPYTER, [
      "nbconvert",
      "--to",
      "html",
      // our template embeds SVG outputs as they are and draws Vega-Lite
      // charts with vega-embed (see its header)
      "--template",
      "memvirt",
      `--TemplateExporter.extra_template_basedirs=${
        path.join(ROOT, "lib", "tools", "book_template")
      }`,
      "--output-dir",
      outDir,
      ...chapters.map((c) => path.join(executed, `${c.name}.ipynb`)),
    ], { env: pyEnv() });
    if (code !== 0) {
      console.error("nbconvert failed");
      return code;
    }
  }
  await copyChartAssets(outDir);
  const items = chapters.map((c) =>
    `    <li><a href="${escapeHtml(encodeURIComponent(c.name))}.html">${
      escapeHtml(c.title)
    }</a> <small>(<a href="executed/${
      escapeHtml(encodeURIComponent(c.name))
    }.ipynb">notebook</a>)</small></li>`
  );
  const index = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>memvirt — contents</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }
    li { margin: 0.4rem 0; }
    small { color: #666; }
  </style>
</head>
<body>
  <h1>memvirt</h1>
  <p>Memory virtualization you can run: the chapters, executed with the Deno Jupyter kernel.</p>
  <ol>
${items.length ? items.join("\n") : "    <li>No chapters yet.</li>"}
  </ol>
</body>
</html>
`;
  const indexPath = path.join(outDir, "index.html");
  Deno.writeTextFileSync(indexPath, index);
  console.log(`book: ${chapters.length} chapter(s): ${indexPath}`);
  return 0;
}

/** Check the book's pages in headless Chromium; returns an exit code. */
async function browserCheck(outDir: string = BOOK_DIR): Promise<number> {
  if (findChromium() === null) {
    console.error(`browser check: ${missingChromiumMessage()}`);
    return 1;
  }
  console.log("checking the pages in headless Chromium ...");
  const report = await checkBook(outDir);
  console.log(formatReport(report));
  return report.ok ? 0 : 1;
}

function chapterOf(nb: string): Chapter {
  const name = path.basename(nb, ".ipynb");
  const title = notebookTitle(JSON.parse(Deno.readTextFileSync(nb))) ?? name;
  return { name, title };
}

function cleanBookDir(outDir: string): void {
  try {
    Deno.removeSync(outDir, { recursive: true });
  } catch { /* not there */ }
  Deno.mkdirSync(path.join(outDir, "executed"), { recursive: true });
}

async function cmdTest(args: string[]): Promise<number> {
  const quick = args.includes("--quick");
  const started = performance.now();
  const deno = Deno.execPath();
  const results = path.join(ROOT, "build/test-results");
  Deno.mkdirSync(results, { recursive: true });
  const unitXml = path.join(results, "unit.xml");
  const nbXml = path.join(results, "notebooks.xml");
  for (const f of [unitXml, nbXml]) {
    try {
      Deno.removeSync(f);
    } catch { /* not there */ }
  }
  const steps: [string, string[], Record<string, string>?][] = [
    ["format", ["fmt", "--check"]],
    ["lint", ["lint"]],
    ["type check", ["check", "mod.ts", "lib", "tests"]],
    ["doc lint", ["doc", "--lint", "mod.ts"]],
  ];
  const unit: [string, string[]] = ["unit and doc tests", [
    "test",
    "-A",
    "--doc",
    "--ignore=tests/notebooks_test.ts",
    `--junit-path=${unitXml}`,
  ]];
  const total = quick ? steps.length + 1 : steps.length + 4;
  let n = 0;
  const finish = (code: number): number => {
    const c = [unitXml, nbXml].map(junitCounts).reduce((a, b) => ({
      passed: a.passed + b.passed,
      failed: a.failed + b.failed,
      skipped: a.skipped + b.skipped,
    }));
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `\n${code === 0 ? "all steps passed" : "FAILED"} in ${secs} s`,
    );
    // The closing line CI reads; only when a test step has run.
    if ([unitXml, nbXml].some(exists)) {
      console.log(
        `tests: ${c.passed} passed, ${c.failed} failed` +
          (c.skipped ? `, ${c.skipped} skipped` : ""),
      );
    }
    return code;
  };
  for (const [name, a] of steps) {
    header(`[${++n}/${total}] ${name}`, `deno ${a.join(" ")}`);
    const code = await run(deno, a);
    if (code !== 0) {
      console.error(`\nstep "${name}" failed (exit code ${code})`);
      return finish(code);
    }
  }
  if (!quick) {
    // before the unit tests: the book and browser tests need Jupyter and
    // Chromium
    header(`[${++n}/${total}] setup`, "Jupyter tools, Deno kernel, Chromium");
    try {
      await setup();
    } catch (err) {
      if (!(err instanceof SetupError)) throw err;
      console.error(`\n${err.message}`);
      return finish(1);
    }
  }
  {
    const [name, a] = unit;
    header(`[${++n}/${total}] ${name}`, `deno ${a.join(" ")}`);
    const code = await run(deno, a, {
      env: quick ? {} : { MEMVIRT_NOTEBOOKS: "required" },
    });
    if (code !== 0) {
      console.error(`\nstep "${name}" failed (exit code ${code})`);
      return finish(code);
    }
  }
  if (quick) {
    console.log("\n(--quick: setup, notebook tests and book skipped)");
    return finish(0);
  }
  // The notebook tests keep what they executed for the book (no second run).
  cleanBookDir(BOOK_DIR);
  const executed = path.join(BOOK_DIR, "executed");
  const nbArgs = [
    "test",
    "-A",
    `--junit-path=${nbXml}`,
    "tests/notebooks_test.ts",
  ];
  header(
    `[${++n}/${total}] notebooks`,
    `MEMVIRT_NOTEBOOKS=required deno ${nbArgs.join(" ")}`,
  );
  let code = await run(deno, nbArgs, {
    env: { MEMVIRT_NOTEBOOKS: "required", MEMVIRT_KEEP_EXECUTED: executed },
  });
  if (code !== 0) {
    console.error(`\nstep "notebooks" failed (exit code ${code})`);
    return finish(code);
  }
  header(
    `[${++n}/${total}] book`,
    "HTML from the executed notebooks, checked in headless Chromium",
  );
  const chapters = listNotebooks().map(chapterOf);
  const absent = chapters.filter((c) =>
    !exists(path.join(executed, `${c.name}.ipynb`))
  );
  if (absent.length) {
    console.error(
      `executed notebooks missing in ${executed}: ${
        absent.map((c) => c.name).join(", ")
      }`,
    );
    return finish(1);
  }
  code = await buildBook(chapters);
  if (code === 0) code = await browserCheck();
  if (code !== 0) console.error(`\nstep "book" failed (exit code ${code})`);
  else console.log(`screenshots: ${path.join(BOOK_DIR, "screenshots")}`);
  return finish(code);
}

async function cmdBook(args: string[]): Promise<number> {
  await setup();
  const out = BOOK_DIR;
  const executed = path.join(out, "executed");
  cleanBookDir(out);
  const notebooks = listNotebooks();
  if (notebooks.length === 0) console.log("no notebooks in notebooks/");
  const chapters: Chapter[] = [];
  let failed = 0;
  for (const nb of notebooks) {
    const name = path.basename(nb, ".ipynb");
    const started = performance.now();
    console.log(`executing ${path.relative(ROOT, nb)} ...`);
    const res = await runNotebook(nb, path.join(executed, `${name}.ipynb`));
    const seconds = (performance.now() - started) / 1000;
    if (!res.ok) {
      failed++;
      console.error(describeFailure(nb, res));
      continue;
    }
    const cells = res.summary?.executed ?? 0;
    console.log(`  ok: ${cells} code cells in ${seconds.toFixed(1)} s`);
    chapters.push(chapterOf(nb));
  }
  if (failed) {
    console.error(`\n${failed} notebook(s) failed; no HTML written`);
    return 1;
  }
  const code = await buildBook(chapters, out);
  if (code !== 0 || args.includes("--no-check")) return code;
  const checked = await browserCheck(out);
  console.log(`screenshots: ${path.join(out, "screenshots")}`);
  return checked;
}

/** Recursively sort object keys, as nbformat writes notebooks. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]),
    );
  }
  return v;
}

/** Notebook JSON with outputs and execution counts removed. */
export function stripNotebook(text: string): string {
  const nb = JSON.parse(text);
  for (const cell of nb.cells ?? []) {
    if (cell.cell_type === "code") {
      cell.outputs = [];
      cell.execution_count = null;
    }
    // JupyterLab's per-cell timing record.
    if (cell.metadata) delete cell.metadata.execution;
  }
  return JSON.stringify(sortKeys(nb), null, 1) + "\n";
}

function cmdStrip(): number {
  const notebooks = listNotebooks();
  for (const nb of notebooks) {
    const before = Deno.readTextFileSync(nb);
    const after = stripNotebook(before);
    const rel = path.relative(ROOT, nb);
    if (after === before) {
      console.log(`${rel}: clean`);
    } else {
      Deno.writeTextFileSync(nb, after);
      console.log(`${rel}: stripped`);
    }
  }
  if (notebooks.length === 0) console.log("no notebooks in notebooks/");
  return 0;
}

const USAGE = `usage: deno run -A lib/tools/run.ts <command>
  setup          install Jupyter tools and Chromium (Debian) if needed, register the Deno kernel
  test [--quick] fmt, lint, check, doc lint, unit + doc tests, notebooks, book + browser check
  book [--no-check]
                 execute notebooks/*.ipynb, write build/book/index.html, check it in Chromium
  strip          remove outputs from notebooks/*.ipynb`;

async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case "setup":
      try {
        await setup();
        return 0;
      } catch (err) {
        if (!(err instanceof SetupError)) throw err;
        console.error(err.message);
        return 1;
      }
    case "test":
      return await cmdTest(rest);
    case "book":
      try {
        return await cmdBook(rest);
      } catch (err) {
        if (!(err instanceof SetupError)) throw err;
        console.error(err.message);
        return 1;
      }
    case "strip":
      return cmdStrip();
    default:
      console.error(USAGE);
      return 2;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
