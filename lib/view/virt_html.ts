/**
 * Views of hosts, domains, MMU schemes and guest OSes: pure functions from
 * plain snapshots to text (the `text/plain` part and the REPL) and HTML
 * (notebooks). Every interpolated string is escaped, there are no ANSI
 * codes, and long lists are folded with a line saying how much was left
 * out.
 *
 * @module
 */

import { hexPhys } from "../address/address.ts";
import { sizeName } from "../paging/record.ts";
import type { DomainSnapshot } from "../virt/domain.ts";
import type { HostSnapshot } from "../virt/host.ts";
import type { SchemeCounters, SchemeEvent } from "../virt/scheme.ts";
import type { GuestOsSnapshot } from "../virt/guest/os.ts";
import { escapeXml } from "./escape.ts";
import { COLORS, FONT_MONO, FONT_SANS, formatCount } from "./style.ts";
import { domainColor, type P2mStripRow, p2mStripSvg } from "./virt_svg.ts";

const TH =
  `style="text-align:left;padding:2px 10px;border-bottom:1px solid #999"`;
const TD = `style="padding:2px 10px;font-family:${
  escapeXml(FONT_MONO)
};text-align:left"`;

function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  max: number,
  what: string,
): string {
  const shown = rows.slice(0, max);
  const body = shown.map((r) =>
    `<tr>${r.map((c) => `<td ${TD}>${escapeXml(c)}</td>`).join("")}</tr>`
  ).join("");
  const more = rows.length > shown.length
    ? `<p style="color:${COLORS.muted}">… ${rows.length - shown.length} more ${
      escapeXml(what)
    } not shown</p>`
    : "";
  return `<table style="border-collapse:collapse;font-size:13px"><thead><tr>${
    head.map((h) => `<th ${TH}>${escapeXml(h)}</th>`).join("")
  }</tr></thead><tbody>${body}</tbody></table>${more}`;
}

function wrap(title: string, inner: string): string {
  return `<div style="font-family:${
    escapeXml(FONT_SANS)
  };font-size:13px;color:${COLORS.ink}"><div style="font-weight:bold;margin:4px 0">${
    escapeXml(title)
  }</div>${inner}</div>`;
}

function fold<T>(
  items: readonly T[],
  max: number,
  what: string,
  line: (x: T) => string,
): string[] {
  const out = items.slice(0, max).map(line);
  if (items.length > max) {
    out.push(`  … ${items.length - max} more ${what} not shown`);
  }
  return out;
}

function purposes(h: HostSnapshot): string {
  const e = Object.entries(h.hypervisorFrames);
  return e.length === 0
    ? "none"
    : e.map(([k, v]) => `${k} ${formatCount(v)}`).join(", ");
}

/**
 * A host as text.
 *
 * @example
 * ```ts
 * import { hostToText } from "./virt_html.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20 });
 * host.createDomain({ name: "web", memory: 2 ** 20 });
 * assert.match(hostToText(host.snapshot()), /1 web\s+xen\s+256 backed/);
 * ```
 */
export function hostToText(h: HostSnapshot): string {
  const lines = [
    `host "${h.name}" (${h.hypervisor}): ${
      sizeName(h.frames * 4096)
    } machine memory, ${formatCount(h.frames)} frames, ${
      formatCount(h.freeFrames)
    } free`,
    `hypervisor frames: ${purposes(h)}`,
    `domains: ${h.domains.length === 0 ? "none" : ""}`,
    ...fold(
      h.domains,
      32,
      "domains",
      (d) =>
        `  ${d.id} ${d.name}  ${d.backing}  ${
          formatCount(d.backedFrames)
        } backed gfns, ${formatCount(d.machineFrames)} machine frames, ${
          formatCount(d.runs)
        } run(s)`,
    ),
  ];
  return lines.join("\n");
}

/**
 * A host as HTML: summary, domains table, and the P2M strip of `rows`.
 *
 * @example
 * ```ts
 * import { hostToHtml } from "./virt_html.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20, name: "<h>" });
 * const d = host.createDomain({ memory: 2 ** 20 });
 * const html = hostToHtml(host.snapshot(), [d.stripRow()]);
 * assert.match(html, /&lt;h&gt;/);
 * assert.match(html, /<svg /);
 * ```
 */
export function hostToHtml(
  h: HostSnapshot,
  rows: readonly P2mStripRow[],
): string {
  const summary = `<p>${
    escapeXml(
      `${h.hypervisor === "xen" ? "Xen" : "KVM"}: ${
        sizeName(h.frames * 4096)
      } machine memory, ${formatCount(h.frames)} frames, ${
        formatCount(h.freeFrames)
      } free; hypervisor frames: ${purposes(h)}`,
    )
  }</p>`;
  const doms = table(
    ["id", "name", "backing", "backed gfns", "machine frames", "runs"],
    h.domains.map((d) => [
      String(d.id),
      d.name,
      d.backing,
      formatCount(d.backedFrames),
      formatCount(d.machineFrames),
      formatCount(d.runs),
    ]),
    32,
    "domains",
  );
  return wrap(
    `host "${h.name}"`,
    summary + doms +
      `<div style="margin-top:8px">${p2mStripSvg(h, rows)}</div>`,
  );
}

function runLines(d: DomainSnapshot): string[][] {
  return d.runs.map((r) => [
    `${hexPhys(r.gfn)}–${hexPhys(r.gfn + r.count - 1)}`,
    `${hexPhys(r.mfn)}–${hexPhys(r.mfn + r.count - 1)}`,
    formatCount(r.count),
  ]);
}

/**
 * A domain's P2M summary as text.
 *
 * @example
 * ```ts
 * import { domainToText } from "./virt_html.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const vm = new Host({ memory: 16 * 2 ** 20 }).createDomain({ memory: 2 ** 20, placement: "contiguous" });
 * assert.match(domainToText(vm.snapshot()), /1 run/);
 * ```
 */
export function domainToText(d: DomainSnapshot): string {
  const lines = [
    `domain ${d.id} "${d.name}" (${d.backing}): ${
      sizeName(d.addressSpace)
    } guest-physical space, ${formatCount(d.backedFrames)} backed gfns, ${
      formatCount(d.machineFrames)
    } machine frames, ${
      formatCount(d.runCount)
    } run(s), placement ${d.placement}`,
  ];
  if (d.backing === "kvm") {
    lines.push(
      `host page faults ${
        formatCount(d.hostFaults ?? 0)
      }, host page-table frames ${formatCount(d.hostTableFrames ?? 0)}`,
      "memslots:",
      ...fold(
        d.memslots ?? [],
        32,
        "memslots",
        (s) =>
          `  ${s.id}: gpa ${hexPhys(s.gpa)}–${
            hexPhys(s.gpa + s.size - 1)
          } → hva ${hexPhys(s.hva)}${s.readonly ? " (read-only)" : ""}, ${
            formatCount(s.resident)
          } resident`,
      ),
    );
  }
  lines.push("P2M runs (gfn → mfn):");
  for (const r of d.runs) {
    lines.push(
      `  ${hexPhys(r.gfn)}+${r.count} → ${hexPhys(r.mfn)}`,
    );
  }
  if (d.runCount > d.runs.length) {
    lines.push(`  … ${d.runCount - d.runs.length} more runs not shown`);
  }
  return lines.join("\n");
}

/**
 * A domain as HTML: summary, memslots (KVM), P2M runs and its strip.
 *
 * @example
 * ```ts
 * import { domainToHtml } from "./virt_html.ts";
 * import { Host } from "../virt/host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "kvm" });
 * const vm = host.createDomain({ memory: 2 ** 20, name: "a&b" });
 * vm.memory.write8(0, 1);
 * const html = domainToHtml(vm.snapshot(), host.snapshot(), vm.stripRow());
 * assert.match(html, /a&amp;b/);
 * assert.match(html, /memslot/);
 * ```
 */
export function domainToHtml(
  d: DomainSnapshot,
  host: HostSnapshot,
  row: P2mStripRow,
): string {
  const c = domainColor(d.id);
  const summary =
    `<p><span style="display:inline-block;width:10px;height:10px;background:${c.stroke}"></span> ${
      escapeXml(
        `${d.backing === "xen" ? "Xen" : "KVM"} domain: ${
          sizeName(d.addressSpace)
        } guest-physical space, ${formatCount(d.backedFrames)} backed gfns, ${
          formatCount(d.machineFrames)
        } machine frames in ${
          formatCount(d.runCount)
        } run(s), placement ${d.placement}`,
      )
    }</p>`;
  let kvm = "";
  if (d.backing === "kvm") {
    kvm = `<p>${
      escapeXml(
        `host page faults: ${
          formatCount(d.hostFaults ?? 0)
        }; host page-table frames: ${formatCount(d.hostTableFrames ?? 0)}`,
      )
    }</p>` + table(
      ["memslot", "gpa range", "hva", "flags", "resident"],
      (d.memslots ?? []).map((s) => [
        String(s.id),
        `${hexPhys(s.gpa)}–${hexPhys(s.gpa + s.size - 1)}`,
        hexPhys(s.hva),
        s.readonly ? "read-only" : "",
        formatCount(s.resident),
      ]),
      32,
      "memslots",
    );
  }
  const runs = table(
    ["gfns", "mfns", "frames"],
    runLines(d),
    32,
    "runs",
  ) + (d.runCount > d.runs.length
    ? `<p style="color:${COLORS.muted}">${
      escapeXml(`… ${d.runCount - d.runs.length} more runs not listed`)
    }</p>`
    : "");
  return wrap(
    `domain ${d.id} "${d.name}"`,
    summary + kvm + runs +
      `<div style="margin-top:8px">${
        p2mStripSvg(host, [row], { title: `P2M of ${d.name}` })
      }</div>`,
  );
}

function counterRows(c: SchemeCounters): [string, string][] {
  const rows: [string, string][] = [
    ["accesses", formatCount(c.accesses)],
    ["guest #PF", formatCount(c.guestPageFaults)],
    ["guest #GP", formatCount(c.generalProtection)],
    ["unbacked", formatCount(c.unbacked)],
    ["CR3 loads", formatCount(c.cr3Loads)],
    ["INVLPG", formatCount(c.invlpgs)],
    ["entry writes", formatCount(c.entryWrites)],
    ["watched-frame writes", formatCount(c.frameWrites)],
    ["P2M changes", formatCount(c.p2mChanges)],
    ["VM exits", formatCount(c.vmExits)],
  ];
  for (const [k, v] of Object.entries(c.exitsByReason)) {
    rows.push([`  exits: ${k}`, formatCount(v)]);
  }
  for (const [k, v] of Object.entries(c.extra)) rows.push([k, formatCount(v)]);
  return rows;
}

function eventText(e: SchemeEvent): string {
  return `#${e.seq} ${e.exit ? "EXIT " : ""}${e.kind}${
    e.va !== undefined ? ` va ${e.va}` : ""
  }${e.gpa !== undefined ? ` gpa ${hexPhys(e.gpa)}` : ""}${
    e.detail ? ` (${e.detail})` : ""
  }`;
}

/**
 * A scheme's counters and its most recent events as text.
 *
 * @example
 * ```ts
 * import { schemeToText } from "./virt_html.ts";
 * import { ReferenceScheme } from "../virt/reference.ts";
 * import assert from "node:assert/strict";
 * const s = new ReferenceScheme();
 * assert.match(schemeToText(s.name, s.counters, s.events), /reference scheme/);
 * ```
 */
export function schemeToText(
  name: string,
  c: SchemeCounters,
  events: readonly SchemeEvent[],
  maxEvents = 12,
): string {
  const rows = counterRows(c);
  const w = Math.max(...rows.map((r) => r[0].length));
  const recent = events.slice(-maxEvents);
  return [
    `${name} scheme`,
    ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`),
    ...(recent.length > 0
      ? [
        `recent events (${recent.length} of ${events.length} kept):`,
        ...recent.map((e) => "  " + eventText(e)),
      ]
      : []),
  ].join("\n");
}

/**
 * A scheme's counters and recent events as HTML.
 *
 * @example
 * ```ts
 * import { schemeToHtml } from "./virt_html.ts";
 * import { ReferenceScheme } from "../virt/reference.ts";
 * import assert from "node:assert/strict";
 * const s = new ReferenceScheme();
 * assert.match(schemeToHtml("<x>", s.counters, []), /&lt;x&gt; scheme/);
 * ```
 */
export function schemeToHtml(
  name: string,
  c: SchemeCounters,
  events: readonly SchemeEvent[],
  maxEvents = 32,
): string {
  const recent = events.slice(-maxEvents);
  return wrap(
    `${name} scheme`,
    table(["counter", "value"], counterRows(c), 64, "counters") +
      (recent.length > 0
        ? `<div style="margin-top:6px">${
          table(
            ["#", "event", "va", "gpa", "detail"],
            recent.map((e) => [
              String(e.seq),
              (e.exit ? "exit: " : "") + e.kind,
              e.va ?? "",
              e.gpa !== undefined ? hexPhys(e.gpa) : "",
              e.detail ?? "",
            ]),
            maxEvents,
            "events",
          )
        }</div>`
        : ""),
  );
}

function vmaText(v: { start: number; end: number; prot: number }): string {
  const p = (v.prot & 1 ? "r" : "-") + (v.prot & 2 ? "w" : "-") +
    (v.prot & 4 ? "x" : "-");
  return `${hexPhys(v.start)}–${hexPhys(v.end)} ${p}`;
}

/**
 * A guest OS as text: frames, processes and their VMAs.
 *
 * @example
 * ```ts
 * import { guestOsToText } from "./virt_html.ts";
 * import { Host } from "../virt/host.ts";
 * import { GuestOs } from "../virt/guest/os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }));
 * os.mmap({ pid: os.spawn("sh").pid, length: 8192, prot: "rx" });
 * assert.match(guestOsToText(os.snapshot()), /pid 1 "sh"[\s\S]*r-x/);
 * ```
 */
export function guestOsToText(s: GuestOsSnapshot): string {
  const f = s.frames;
  const lines = [
    `guest OS "${s.name}" in domain "${s.domain}" (${s.scheme} scheme): ${
      s.current === undefined ? "idle" : `pid ${s.current} running`
    }`,
    `frames: ${formatCount(f.total)} (${formatCount(f.free)} free, ${
      formatCount(f.table)
    } page tables, ${formatCount(f.data)} data, ${
      formatCount(f.kernel)
    } kernel)${
      s.ballooned > 0 ? `, ${formatCount(s.ballooned)} ballooned` : ""
    }`,
    `page faults ${formatCount(s.counters.pageFaults)}: ${
      Object.entries(s.counters.resolutions).filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${formatCount(v)}`).join(", ") || "none"
    }; INVLPG ${formatCount(s.counters.invlpgs)}, CR3 loads ${
      formatCount(s.counters.cr3Loads)
    }`,
  ];
  for (const p of s.processes.slice(0, 24)) {
    lines.push(
      `pid ${p.pid} "${p.name}"${
        p.current ? " (running)" : ""
      } parent ${p.parent}, root ${hexPhys(p.root)}, ${p.tables} table page(s)`,
      ...fold(
        p.vmas,
        16,
        "VMAs",
        (v) =>
          `  ${vmaText(v)} ${v.label} (${formatCount(v.resident)} resident)`,
      ),
    );
  }
  if (s.processes.length > 24) {
    lines.push(`… ${s.processes.length - 24} more processes not shown`);
  }
  return lines.join("\n");
}

/**
 * A guest OS as HTML: frames, counters, and a table of processes and VMAs.
 *
 * @example
 * ```ts
 * import { guestOsToHtml } from "./virt_html.ts";
 * import { Host } from "../virt/host.ts";
 * import { GuestOs } from "../virt/guest/os.ts";
 * import assert from "node:assert/strict";
 * const os = new GuestOs(new Host({ memory: 32 * 2 ** 20 }).createDomain({ memory: 2 ** 21 }));
 * os.spawn("<init>");
 * assert.match(guestOsToHtml(os.snapshot()), /&lt;init&gt;/);
 * ```
 */
export function guestOsToHtml(s: GuestOsSnapshot): string {
  const f = s.frames;
  const summary = `<p>${
    escapeXml(
      `domain "${s.domain}", ${s.scheme} scheme, ${
        s.current === undefined ? "idle" : `pid ${s.current} running`
      }; frames: ${formatCount(f.total)} (${formatCount(f.free)} free, ${
        formatCount(f.table)
      } page tables, ${formatCount(f.data)} data, ${
        formatCount(f.kernel)
      } kernel)`,
    )
  }</p>`;
  const rows: string[][] = [];
  for (const p of s.processes) {
    const vmas = p.vmas.length === 0 ? [undefined] : p.vmas.slice(0, 16);
    vmas.forEach((v, i) => {
      rows.push([
        i === 0 ? `${p.pid}${p.current ? " ▶" : ""}` : "",
        i === 0 ? p.name : "",
        i === 0 ? hexPhys(p.root) : "",
        v ? vmaText(v) : "(no mappings)",
        v ? v.label : "",
        v ? formatCount(v.resident) : "",
      ]);
    });
    if (p.vmas.length > 16) {
      rows.push(["", "", "", `… ${p.vmas.length - 16} more VMAs`, "", ""]);
    }
  }
  const res = Object.entries(s.counters.resolutions).filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${formatCount(v)}`).join(", ") || "none";
  return wrap(
    `guest OS "${s.name}"`,
    summary +
      table(
        ["pid", "name", "root (gpa)", "VMA", "label", "resident"],
        rows,
        200,
        "rows",
      ) +
      `<p>${
        escapeXml(
          `page faults ${formatCount(s.counters.pageFaults)} (${res}); INVLPG ${
            formatCount(s.counters.invlpgs)
          }; CR3 loads ${formatCount(s.counters.cr3Loads)}; page tables freed ${
            formatCount(s.counters.tablesFreed)
          }`,
        )
      }</p>`,
  );
}
