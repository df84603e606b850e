/**
 * Record a real memory trace of a program with Valgrind's Lackey tool
 * (`valgrind --tool=lackey --trace-mem=yes --log-file=F -- prog args…`),
 * for {@linkcode lackeyBatches} and trace replay.
 *
 * Lackey traces the program's user-space accesses as Valgrind's JIT runs
 * it: instruction fetches and data loads/stores at the program's own
 * virtual addresses. Not in the trace: the kernel's accesses (system
 * calls, page-fault handling), and Valgrind's own code and data. A traced
 * program runs tens of times slower than natively and the trace is about
 * 15 bytes a line (`ls /` gives ~770 k lines, 13 MB, 0.6 MB gzipped).
 *
 * Needs `valgrind` on the PATH (Debian/Ubuntu package `valgrind`).
 *
 * @module
 */

/** Options for {@linkcode recordTrace}. */
export interface RecordOptions {
  /** Output file; a name ending in `.gz` is gzipped. Default: a new temporary file `memvirt-*.lackey`. */
  output?: string;
  /** Gzip the output (default: when `output` ends in `.gz`). */
  gzip?: boolean;
  /** The valgrind executable (default "valgrind", looked up on the PATH). */
  valgrind?: string;
  /** Working directory of the program. */
  cwd?: string;
  /** Environment of the program (default inherited). */
  env?: Record<string, string>;
  /** The program's own stdout/stderr: "null" (default) or "inherit". */
  programOutput?: "null" | "inherit";
  /** Accept a non-zero exit status of the program (default false: throw). */
  allowFailure?: boolean;
  /** Kill the recording when aborted. */
  signal?: AbortSignal;
}

const MISSING =
  'valgrind is not installed (no "valgrind" on the PATH): install the Debian/Ubuntu package with `apt-get install valgrind`';

/**
 * The version of valgrind (e.g. "valgrind-3.19.0"), or undefined when it
 * is not on the PATH.
 *
 * @example
 * ```ts
 * import { valgrindVersion } from "./record.ts";
 * import assert from "node:assert/strict";
 * const v = await valgrindVersion();
 * assert.ok(v === undefined || /^valgrind-\d+\.\d+/.test(v));
 * assert.equal(await valgrindVersion("/nonexistent/valgrind"), undefined);
 * ```
 */
export async function valgrindVersion(
  valgrind = "valgrind",
): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(valgrind, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    return new TextDecoder().decode(out.stdout).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function gzipFile(from: string, to: string): Promise<void> {
  const src = await Deno.open(from);
  const dst = await Deno.open(to, {
    write: true,
    create: true,
    truncate: true,
  });
  await src.readable
    .pipeThrough(
      new CompressionStream("gzip") as unknown as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >,
    )
    .pipeTo(dst.writable);
}

/**
 * Run `command` under Valgrind Lackey with `--trace-mem=yes` and write the
 * trace to a file; returns the file's path. Throws an `Error` naming what
 * is missing (and the apt package) when valgrind is not on the PATH, and
 * when the program exits with a non-zero status (unless `allowFailure`).
 *
 * @example
 * ```ts ignore
 * import { recordTrace } from "./record.ts";
 * import { summarizeTrace } from "./trace.ts";
 * const path = await recordTrace(["/bin/true"], { output: "/tmp/true.lackey.gz" });
 * console.log((await summarizeTrace(path)).accesses); // ~167 000
 * ```
 *
 * @example Bad arguments are rejected before anything runs.
 * ```ts
 * import { recordTrace } from "./record.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(recordTrace([]), /command \[\] is invalid/);
 * await assert.rejects(recordTrace(["ls"], { valgrind: "/nonexistent/valgrind" }), /apt-get install valgrind/);
 * ```
 */
export async function recordTrace(
  command: string[],
  options: RecordOptions = {},
): Promise<string> {
  if (
    !Array.isArray(command) || command.length === 0 ||
    !command.every((c) => typeof c === "string" && c.length > 0)
  ) {
    throw new TypeError(
      `command ${
        JSON.stringify(command)
      } is invalid: expected a non-empty array of non-empty strings (program, then arguments)`,
    );
  }
  const valgrind = options.valgrind ?? "valgrind";
  if (await valgrindVersion(valgrind) === undefined) {
    throw new Error(
      valgrind === "valgrind" ? MISSING : `${valgrind}: ${MISSING}`,
    );
  }
  const output = options.output ??
    await Deno.makeTempFile({ prefix: "memvirt-", suffix: ".lackey" });
  const gzip = options.gzip ?? output.endsWith(".gz");
  const log = gzip
    ? await Deno.makeTempFile({ prefix: "memvirt-", suffix: ".lackey" })
    : output;
  let ok = false;
  try {
    const streams = options.programOutput ?? "null";
    const child = new Deno.Command(valgrind, {
      args: [
        "--tool=lackey",
        "--trace-mem=yes",
        `--log-file=${log}`,
        "--",
        ...command,
      ],
      stdin: "null",
      stdout: streams,
      stderr: streams,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      ...(options.env !== undefined
        ? { env: options.env, clearEnv: true }
        : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    }).spawn();
    const status = await child.status;
    options.signal?.throwIfAborted();
    if (!status.success && !options.allowFailure) {
      throw new Error(
        `recording ${
          JSON.stringify(command)
        } failed: exit status ${status.code}${
          status.signal ? ` (signal ${status.signal})` : ""
        }; the Valgrind log is ${log} (pass allowFailure to keep a failing program's trace)`,
      );
    }
    if (gzip) await gzipFile(log, output);
    ok = true;
  } finally {
    // keep a failed recording's log for the error message
    if (gzip && ok) await Deno.remove(log).catch(() => {});
  }
  return output;
}
