/**
 * Notebook tests: every `notebooks/*.ipynb` is stored without outputs,
 * executes on the Deno kernel without error, shows the MIME types it
 * promises in `metadata.memvirt.expect_mime`, and prints no ANSI codes.
 *
 * Needs the Debian Jupyter tools and a registered `deno` kernel
 * (`deno run -A lib/tools/run.ts setup`). Without them the execution tests
 * are ignored, with a message, unless `MEMVIRT_NOTEBOOKS=required` (set by
 * `deno task test`), in which case they fail naming what is missing.
 *
 * `MEMVIRT_KEEP_EXECUTED=<dir>` keeps a copy of each cleanly executed
 * notebook there (the test command builds the book from them).
 *
 * Knobs: `MEMVIRT_NB_GRACE` (seconds to keep reading outputs after a cell
 * reports idle, 1.5), `MEMVIRT_NB_TIMEOUT` (seconds per cell, 300).
 *
 * @module
 */

import assert from "node:assert/strict";
import * as path from "node:path";
import {
  checkPrerequisites,
  describeFailure,
  listNotebooks,
  ROOT,
  runNotebook,
} from "../lib/tools/run.ts";

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
  execution_count?: number | null;
}

interface Notebook {
  cells: Cell[];
  metadata?: { memvirt?: { expect_mime?: unknown } };
}

const ANSI = "\x1b[";
const required = Deno.env.get("MEMVIRT_NOTEBOOKS") === "required";
const notebooks = listNotebooks();
const prereq = await checkPrerequisites();
const missing = prereq.problems.join("; ");
const howToFix =
  "run `npx -y deno@2.9.6 run -A lib/tools/run.ts setup` (installs the Debian packages and registers the kernel)";

function readNotebook(file: string): Notebook {
  return JSON.parse(Deno.readTextFileSync(file));
}

function source(cell: Cell): string {
  return Array.isArray(cell.source) ? cell.source.join("") : cell.source;
}

/** Every piece of text an output carries, with where it came from. */
function outputTexts(out: Output): [string, string][] {
  const texts: [string, string][] = [];
  const str = (v: unknown) =>
    typeof v === "string"
      ? v
      : Array.isArray(v) && v.every((x) => typeof x === "string")
      ? v.join("")
      : JSON.stringify(v);
  if (out.text !== undefined) {
    texts.push([`stream ${out.name ?? ""}`, str(out.text)]);
  }
  for (const [mime, v] of Object.entries(out.data ?? {})) {
    texts.push([mime, str(v)]);
  }
  if (out.evalue !== undefined) texts.push(["error evalue", out.evalue]);
  for (const line of out.traceback ?? []) texts.push(["traceback", line]);
  return texts;
}

const rel = (file: string) => path.relative(ROOT, file);

if (prereq.problems.length > 0 && !required) {
  console.log(
    `notebook execution tests ignored, missing: ${missing}\n${howToFix}` +
      " (set MEMVIRT_NOTEBOOKS=required to fail instead)",
  );
}

Deno.test({
  name: "notebooks: Jupyter tools and Deno kernel present",
  ignore: prereq.problems.length > 0 && !required,
  fn() {
    assert.deepEqual(
      prereq.problems,
      [],
      `notebook tests need: ${missing}\n${howToFix}`,
    );
  },
});

for (const file of notebooks) {
  Deno.test(`${rel(file)}: stored without outputs`, () => {
    const nb = readNotebook(file);
    const dirty = nb.cells.flatMap((cell, i) =>
      cell.cell_type === "code" &&
        ((cell.outputs?.length ?? 0) > 0 ||
          (cell.execution_count ?? null) !== null)
        ? [i]
        : []
    );
    assert.deepEqual(
      dirty,
      [],
      `cells ${dirty.join(", ")} have outputs or execution counts; ` +
        "run `deno task strip`",
    );
  });

  Deno.test({
    name: `${rel(file)}: executes cleanly`,
    ignore: prereq.problems.length > 0 && !required,
    async fn() {
      assert.equal(prereq.problems.length, 0, `missing: ${missing}`);
      const nb = readNotebook(file);
      const expect = nb.metadata?.memvirt?.expect_mime ?? [];
      assert.ok(
        Array.isArray(expect) && expect.every((m) => typeof m === "string"),
        "metadata.memvirt.expect_mime must be an array of strings",
      );
      const tmp = await Deno.makeTempDir({ prefix: "memvirt-nb-" });
      const outFile = path.join(tmp, path.basename(file));
      const res = await runNotebook(file, outFile);
      if (!res.ok) {
        assert.fail(
          `${describeFailure(file, res)}\n(executed notebook: ${outFile})`,
        );
      }
      const executed = readNotebook(outFile);
      const seen = new Set<string>();
      const ansi: string[] = [];
      const errors: string[] = [];
      executed.cells.forEach((cell, i) => {
        for (const out of cell.outputs ?? []) {
          for (const mime of Object.keys(out.data ?? {})) seen.add(mime);
          if (out.output_type === "error") {
            errors.push(
              `cell ${i}:\n${source(cell)}\n${out.ename}: ${out.evalue}`,
            );
          }
          for (const [where, text] of outputTexts(out)) {
            if (text.includes(ANSI)) {
              ansi.push(
                `cell ${i} (${where}): ${JSON.stringify(text.slice(0, 120))}`,
              );
            }
          }
        }
      });
      const absent = (expect as string[]).filter((m) => !seen.has(m));
      const problems = [
        ...errors.map((e) => `error output in ${e}`),
        ...(absent.length
          ? [
            `expected MIME types not in any output: ${absent.join(", ")}` +
            ` (seen: ${[...seen].sort().join(", ") || "none"})`,
          ]
          : []),
        ...ansi.map((a) => `ANSI escape code in ${a}`),
      ];
      if (problems.length) {
        assert.fail(
          `${rel(file)}:\n${problems.join("\n")}\n` +
            `(executed notebook: ${outFile})`,
        );
      }
      // `deno task test` builds the HTML book from these (no second run)
      const keep = Deno.env.get("MEMVIRT_KEEP_EXECUTED");
      if (keep) {
        await Deno.mkdir(keep, { recursive: true });
        await Deno.copyFile(outFile, path.join(keep, path.basename(file)));
      }
      await Deno.remove(tmp, { recursive: true });
    },
  });
}
