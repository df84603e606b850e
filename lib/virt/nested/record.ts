/**
 * The nested walk record: an immutable, plain-data picture of one 2-D walk
 * (every reference in order with its tags, the gpa each guest row
 * translated, the outcome), built from a {@linkcode NestedWalker} after the
 * fact — nobody re-walks. It displays itself in Jupyter as the 2-D walk
 * grid ({@linkcode nestedWalkToSvg}) plus a text listing.
 *
 * @module
 */

import { hex64 } from "../../address/address.ts";
import { nestedWalkToSvg } from "../../view/nested_svg.ts";
import {
  type NestedOutcome,
  nestedOutcome,
  type NestedRef,
  nestedRefs,
  type NestedWalker,
} from "./walk.ts";

/** One guest row of the grid: a guest table entry's gpa, or the final gpa. */
export interface NestedRow {
  /** Guest level, or "data" for the final gpa. */
  readonly guest: number | "data";
  /** Guest entry name ("PML4E", …) or "data". */
  readonly name: string;
  /** The gpa this row's host walk translated (entry address; data gpa), if reached. */
  readonly gpa?: number;
  /** Whether this walk wrote the guest entry's A/D bits. */
  readonly adWritten: boolean;
}

/**
 * An immutable record of one nested walk.
 *
 * @example
 * ```ts
 * import { NestedWalker } from "./walk.ts";
 * import { NestedWalkRecord } from "./record.ts";
 * import { EPT_4LEVEL, eptMode } from "../../paging/ept.ts";
 * import { pagingMode } from "../../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../../paging/format.ts";
 * import { PhysicalMemory } from "../../memory/memory.ts";
 * import assert from "node:assert/strict";
 * const host = new PhysicalMemory({ size: 1 << 16 });
 * const w = new NestedWalker(pagingMode(X86_64_4LEVEL), { kind: "ept", mode: eptMode(EPT_4LEVEL) }, host, 0x1000);
 * w.walk(0x2000, 0, 0x1000, 0);
 * const r = NestedWalkRecord.from(w, 0, 0x1000);
 * assert.equal(r.outcome.kind, "ept-violation");
 * const d = (r as unknown as Record<symbol, () => Record<string, string>>)[Symbol.for("Jupyter.display")]();
 * assert.match(d["image/svg+xml"], /^<svg /);
 * assert.match(d["text/plain"], /EPT violation/);
 * ```
 */
export class NestedWalkRecord {
  /** The guest linear address, as hex. */
  readonly va: string;
  /** Guest format name. */
  readonly guestFormat: string;
  /** Guest levels of the format. */
  readonly guestLevels: number;
  /** "ept" or "npt". */
  readonly stage: "ept" | "npt";
  /** Second-stage format name. */
  readonly hostFormat: string;
  /** Second-stage levels. */
  readonly hostLevels: number;
  /** Guest access kind. */
  readonly access: "read" | "write" | "fetch";
  /** Every reference in order. */
  readonly refs: readonly NestedRef[];
  /** Guest rows, root first, then "data". */
  readonly rows: readonly NestedRow[];
  /** The outcome. */
  readonly outcome: NestedOutcome;

  private constructor(fields: Omit<NestedWalkRecord, "tableReads">) {
    this.va = fields.va;
    this.guestFormat = fields.guestFormat;
    this.guestLevels = fields.guestLevels;
    this.stage = fields.stage;
    this.hostFormat = fields.hostFormat;
    this.hostLevels = fields.hostLevels;
    this.access = fields.access;
    this.refs = Object.freeze(fields.refs.map((r) => Object.freeze(r)));
    this.rows = Object.freeze(fields.rows.map((r) => Object.freeze(r)));
    this.outcome = Object.freeze(fields.outcome);
    Object.freeze(this);
  }

  /** Capture the walker's last walk (of `vaHi:vaLo`). */
  static from(w: NestedWalker, vaHi: number, vaLo: number): NestedWalkRecord {
    const g = w.guest;
    const f = w.guestMode.format;
    const n = f.levels.length;
    const rows: NestedRow[] = [];
    for (let level = n; level >= 1; level--) {
      let gpa: number | undefined = undefined;
      let ad = false;
      for (let i = 0; i < g.steps; i++) {
        if (g.level[i] === level) {
          gpa = g.entryAddr[i];
          ad = (g.aSet & (1 << i)) !== 0 || (i === g.steps - 1 && g.dSet);
        }
      }
      const reached = gpa !== undefined ||
        (w.faultGuestLevel === level && w.onTableWalk);
      if (gpa === undefined && w.faultGuestLevel === level) gpa = w.gpa;
      rows.push({
        guest: level,
        name: f.levels[n - level].entry,
        ...(reached && gpa !== undefined ? { gpa } : {}),
        adWritten: ad,
      });
    }
    const o = nestedOutcome(w);
    const finalGpa = o.kind === "ok"
      ? o.gpa
      : (o.kind === "ept-violation" || o.kind === "ept-misconfig" ||
          o.kind === "npf") && !w.onTableWalk
      ? o.gpa
      : undefined;
    rows.push({
      guest: "data",
      name: "data",
      ...(finalGpa !== undefined ? { gpa: finalGpa } : {}),
      adWritten: false,
    });
    const flags = w.accessFlags;
    return new NestedWalkRecord({
      va: hex64(vaHi, vaLo),
      guestFormat: f.name,
      guestLevels: n,
      stage: w.stage.kind,
      hostFormat: w.stage.mode.format.name,
      hostLevels: w.hostLevels,
      access: (flags & 1) !== 0
        ? "write"
        : (flags & 2) !== 0
        ? "fetch"
        : "read",
      refs: nestedRefs(w),
      rows,
      outcome: o,
    });
  }

  /** Guest-table and second-stage reads (the 24 of a 4×4 walk; no data access, no A/D writes). */
  get tableReads(): number {
    return this.refs.filter((r) =>
      r.op === "read" && r.host !== "data" && r.cached === undefined
    ).length;
  }

  /** A text listing (bounded: at most 64 references). */
  toString(): string {
    const skipped = this.refs.filter((r) => r.cached !== undefined).length;
    const lines = [
      `2-D walk of ${this.va} (${this.access}): guest ${this.guestFormat} × ${this.hostFormat}, ${this.tableReads} table references${
        skipped > 0 ? ` (${skipped} skipped by caches)` : ""
      }`,
    ];
    for (const r of this.refs.slice(0, 64)) {
      const g = r.guest === "data" ? "data" : `gL${r.guest}`;
      const h = typeof r.host === "number" ? `hL${r.host}` : r.host;
      lines.push(
        `${String(r.n).padStart(3)}  ${g.padEnd(4)} ${h.padEnd(11)} ${
          r.cached !== undefined
            ? `skip  (${r.cached})`
            : `${r.op.padEnd(5)} hpa ${
              hex64(Math.floor(r.hpa / 2 ** 32), r.hpa >>> 0)
            }`
        }`,
      );
    }
    lines.push(nestedOutcomeText(this.outcome));
    return lines.join("\n");
  }

  /** Jupyter rich display: the 2-D walk grid and the text listing. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": this.toString(),
      "image/svg+xml": nestedWalkToSvg(this),
    };
  }
}

/**
 * One line describing an outcome.
 *
 * @example
 * ```ts
 * import { nestedOutcomeText } from "./record.ts";
 * import assert from "node:assert/strict";
 * assert.equal(nestedOutcomeText({ kind: "ok", gpa: 0x1000, hpa: 0x9000 }), "ok: gpa 0x1000 → hpa 0x9000");
 * ```
 */
export function nestedOutcomeText(o: NestedOutcome): string {
  const hx = (a: number) => hex64(Math.floor(a / 2 ** 32), a >>> 0);
  switch (o.kind) {
    case "ok":
      return `ok: gpa ${hx(o.gpa)} → hpa ${hx(o.hpa)}`;
    case "page-fault":
      return `guest #PF (${o.reason}, error code 0x${
        o.errorCode.toString(16)
      }): delivered to the guest, no VM exit`;
    case "gp":
      return `guest #GP (${o.reason})`;
    case "ept-violation": {
      const q = o.qualification;
      const acc = [q.read ? "R" : "", q.write ? "W" : "", q.fetch ? "X" : ""]
        .join("");
      return `EPT violation (${o.reason}) at gpa ${hx(o.gpa)}, ${
        o.onTableWalk ? `guest L${o.guestLevel} table access` : "final access"
      }: qualification 0x${q.raw.toString(16)} (${acc}, GLA ${
        q.linearValid ? "valid" : "invalid"
      })`;
    }
    case "ept-misconfig":
      return `EPT misconfiguration (${o.reason}) at gpa ${
        hx(o.gpa)
      }, EPT level ${o.hostLevel}`;
    case "npf":
      return `#NPF (${o.reason}) at gpa ${hx(o.gpa)}: EXITINFO1 0x${
        (o.errorCode.guestTable ? 2 : 1).toString(16)
      }${o.errorCode.low.toString(16).padStart(8, "0")} (${
        o.errorCode.guestTable ? "guest page table" : "final gpa"
      })`;
  }
}
