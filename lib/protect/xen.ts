/**
 * How Xen protects itself from paravirtualized guests (book chapter 3;
 * Barham et al., "Xen and the Art of Virtualization", SOSP 2003, §2.1).
 *
 * **32-bit x86.** Xen occupies the top 64 MiB of every address space
 * (`HYPERVISOR_VIRT_START` = 0xFC000000), the guest kernel runs in ring 1
 * and its applications in ring 3. Paging alone cannot keep a ring-1 kernel
 * out of Xen (rings 0–2 are all "supervisor" for paging, SDM §4.6), so Xen
 * uses segmentation: the guest's segments end at `GUEST_SEGMENT_MAX_ADDR`
 * and every descriptor a guest installs goes through `check_descriptor`
 * (Xen 3.0 `arch/x86/x86_32/mm.c`): a present descriptor must not have
 * DPL 0, a system descriptor must be a call gate to a guest code selector,
 * the base must lie a page below the limit address, and a limit reaching
 * past it is truncated (G = 1) or refused (G = 0). A ring-1 or ring-3
 * reference to Xen's range then fails the **segment limit check** (#GP)
 * before paging sees it, while Xen's pages are supervisor pages present in
 * every address space, so Xen needs no CR3 switch on a hypercall.
 * Exactness note: in Xen's source `GUEST_SEGMENT_MAX_ADDR` is
 * `RO_MPT_VIRT_END` = 0xFC400000 (non-PAE): the guest segments also cover
 * the first 4 MiB of the hole, the read-only machine-to-physical table,
 * which paging maps read-only. Pass `guestSegmentMax: 0xFC000000` for the
 * book's simpler picture (segments stop at the hole).
 *
 * **x86-64.** In 64-bit mode segment limits are not checked, so Xen runs
 * the guest kernel in ring 3 too, with **separate kernel and user page
 * tables**: the guest kernel's mappings exist only in the kernel table and
 * Xen switches CR3 when it enters or leaves the guest kernel
 * (`toggle_guest_mode`). Xen's range 0xFFFF800000000000–0xFFFF87FFFFFFFFFF
 * (PML4 slots 256–271) is supervisor-only and shared into every table.
 * Guest kernel pages are user pages (Xen's `adjust_guest_l1e` sets U/S, the
 * kernel runs at CPL 3), so a guest *user* access to guest-kernel memory
 * fails because the user table does not map it — not because of U/S.
 * A system call bounces through Xen ({@linkcode Xen64System.syscallBounce}).
 *
 * Not modelled: PAE Xen (hole at 0xF5800000), the LDT, GDT frame
 * validation and per-vCPU GDT pages, Xen's shadow-linear and per-domain
 * areas, the read-only M2P of x86-64 guests, SYSCALL/SYSRET MSRs and
 * SWAPGS, bounce-frame contents, event upcalls.
 *
 * @module
 */

import { LinearAddress } from "../address/address.ts";
import { FrameAllocator, PhysicalMemory } from "../memory/memory.ts";
import { PageTable } from "../paging/builder.ts";
import { X86_32, X86_64_4LEVEL } from "../paging/format.ts";
import { Cpu } from "../cpu/cpu.ts";
import {
  decodeDescriptor,
  describeSegment,
  gateDescriptor,
  parseSelector,
  segmentDescriptor,
} from "./descriptor.ts";
import { DescriptorTable } from "./table.ts";
import { type SegmentAccess, Segmentation } from "./segment.ts";
import { checkAccess, type ProtectionMachine } from "./access.ts";
import type { ProtectionCheck, ProtectionRecord } from "./record.ts";
import {
  bounceToHtml,
  bounceToText,
  descriptorCheckToHtml,
  descriptorCheckToText,
  type StripRegion,
  xen32LayoutSvg,
} from "../view/protect_html.ts";

/**
 * Constants of 32-bit (non-PAE) Xen: `xen/include/public/arch-x86/xen-x86_32.h`,
 * `asm-x86/config.h`, `asm-x86/desc.h`.
 *
 * @example
 * ```ts
 * import { XEN32 } from "./xen.ts";
 * import assert from "node:assert/strict";
 * assert.equal(XEN32.FLAT_RING1_CS >> 3, XEN32.FIRST_RESERVED_GDT_ENTRY + 3);
 * assert.equal(2 ** 32 - XEN32.HYPERVISOR_VIRT_START, 64 * 2 ** 20);
 * ```
 */
export const XEN32: Readonly<{
  HYPERVISOR_VIRT_START: number;
  RO_MPT_VIRT_END: number;
  FIRST_RESERVED_GDT_ENTRY: number;
  LAST_RESERVED_GDT_ENTRY: number;
  HYPERVISOR_CS: number;
  HYPERVISOR_DS: number;
  FLAT_RING1_CS: number;
  FLAT_RING1_DS: number;
  FLAT_RING3_CS: number;
  FLAT_RING3_DS: number;
  HYPERCALL_VECTOR: number;
}> = Object.freeze({
  /** Start of Xen's 64 MiB at the top of every address space. */
  HYPERVISOR_VIRT_START: 0xfc000000,
  /** End of the read-only M2P table = GUEST_SEGMENT_MAX_ADDR. */
  RO_MPT_VIRT_END: 0xfc400000,
  /** First GDT entry Xen reserves (page 14 of the GDT). */
  FIRST_RESERVED_GDT_ENTRY: 14 * 512,
  /** Last reserved GDT entry (one page). */
  LAST_RESERVED_GDT_ENTRY: 15 * 512 - 1,
  /** Xen's ring-0 flat code segment. */
  HYPERVISOR_CS: 0xe008,
  /** Xen's ring-0 flat data segment. */
  HYPERVISOR_DS: 0xe010,
  /** Guest kernel code (ring 1). */
  FLAT_RING1_CS: 0xe019,
  /** Guest kernel data and stack (ring 1). */
  FLAT_RING1_DS: 0xe021,
  /** Guest user code (ring 3). */
  FLAT_RING3_CS: 0xe02b,
  /** Guest user data and stack (ring 3). */
  FLAT_RING3_DS: 0xe033,
  /** `int $0x82`: the hypercall trap. */
  HYPERCALL_VECTOR: 0x82,
});

/** What Xen's `check_descriptor` did with a descriptor. */
export interface DescriptorCheck {
  /** "accepted" as is, "truncated" (limit cut to exclude Xen), or "refused". */
  readonly verdict: "accepted" | "truncated" | "refused";
  /** Why, in one line. */
  readonly reason: string;
  /** The descriptor as given. */
  readonly given: readonly [number, number];
  /** The descriptor as installed (absent when refused). */
  readonly installed?: readonly [number, number];
  /** The checks made, in order. */
  readonly checks: readonly ProtectionCheck[];
}

function guestCodeSelectorOk(sel: number): boolean {
  // VALID_CODESEL: FLAT_RING1_CS, or RPL 1 outside Xen's reserved entries (or any LDT selector)
  if (sel === XEN32.FLAT_RING1_CS) return true;
  const idx = sel >>> 3;
  const outside = idx < XEN32.FIRST_RESERVED_GDT_ENTRY ||
    idx > XEN32.LAST_RESERVED_GDT_ENTRY || (sel & 4) !== 0;
  return outside && (sel & 3) === 1;
}

/**
 * Xen's `check_descriptor` for a descriptor a 32-bit guest installs in its
 * GDT or LDT (Xen 3.0, `arch/x86/x86_32/mm.c`), computed with the same
 * 32-bit wrap-around arithmetic.
 *
 * @example
 * ```ts
 * import { checkDescriptor, XEN32 } from "./xen.ts";
 * import { segmentDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * assert.equal(checkDescriptor(...segmentDescriptor({ kind: "data", dpl: 0 })).verdict, "refused");
 * const flat = checkDescriptor(...segmentDescriptor({ kind: "data", dpl: 1 })); // 4 GiB, G = 1
 * assert.equal(flat.verdict, "truncated");
 * assert.deepEqual(flat.installed, segmentDescriptor({ kind: "data", dpl: 1, limit: XEN32.RO_MPT_VIRT_END - 1 }));
 * const small = checkDescriptor(...segmentDescriptor({ kind: "data", dpl: 3, base: 0xfc38_0000, limit: 0xf_ffff, g: false }));
 * assert.equal(small.verdict, "refused"); // reaches past the limit address with G = 0
 * ```
 */
export function checkDescriptor(
  lo: number,
  hi: number,
  options: { guestSegmentMax?: number } = {},
): DescriptorCheck {
  const max = options.guestSegmentMax ?? XEN32.RO_MPT_VIRT_END;
  const d = decodeDescriptor(lo, hi);
  const given = [lo >>> 0, hi >>> 0] as const;
  const checks: ProtectionCheck[] = [];
  const hex = (v: number) => "0x" + (v >>> 0).toString(16);
  const add = (name: string, passed: boolean, rule: string, detail: string) =>
    checks.push({ stage: "privilege", name, passed, rule, detail });
  const refuse = (reason: string): DescriptorCheck =>
    showCheck({ verdict: "refused", reason, given, checks });
  const accept = (reason: string): DescriptorCheck =>
    showCheck({ verdict: "accepted", reason, given, installed: given, checks });
  if (!d.present) {
    add(
      "present",
      true,
      "a not-present descriptor always faults, so is safe",
      "P = 0",
    );
    return accept("not present: any use faults, so it is safe");
  }
  add(
    "DPL ≠ 0",
    d.dpl !== 0,
    "no DPL-0 descriptors: ring 0 is Xen's",
    `DPL ${d.dpl}`,
  );
  if (d.dpl === 0) return refuse("DPL 0 is refused: ring 0 belongs to Xen");
  if (!d.s) {
    const isGate = d.type === 0xc;
    add(
      "system type",
      isGate,
      "the only system descriptor allowed is a 32-bit call gate (no TSS, LDT, interrupt/trap/task gates)",
      describeSegment(d).name,
    );
    if (!isGate) {
      return refuse(
        `${
          describeSegment(d).name
        } is refused: only call gates may be installed`,
      );
    }
    const target = lo >>> 16;
    const ok = guestCodeSelectorOk(target);
    add(
      "gate target",
      ok,
      "the gate's code selector is FLAT_RING1_CS, or has RPL 1 and is not one of Xen's reserved GDT entries",
      hex(target),
    );
    if (!ok) {
      return refuse(
        `call gate target ${hex(target)} is not a guest code selector`,
      );
    }
    const rsvd = (hi & 0xe0) === 0;
    add(
      "reserved bits",
      rsvd,
      "call gate bits 7:5 of the high dword are zero",
      hex(hi & 0xe0),
    );
    if (!rsvd) return refuse("call gate reserved bits are set");
    return accept("call gate to a guest code segment");
  }
  const base = d.base;
  const baseOk = base < max - 4096;
  add(
    "base",
    baseOk,
    `base < GUEST_SEGMENT_MAX_ADDR − one page (${hex(max - 4096)})`,
    `base ${hex(base)}`,
  );
  if (!baseOk) {
    return refuse(`base ${hex(base)} lies within a page of Xen's area`);
  }
  let limit = (d.limit + 1) >>> 0;
  if (d.g) limit = (limit * 4096) % 2 ** 32;
  const sum = (base + limit) >>> 0;
  let newLimit: number | undefined;
  const expandDown = (d.type & 0xc) === 0x4; // data, E = 1
  if (expandDown) {
    const bad = sum > base;
    add(
      "limit",
      !bad,
      "expand-down: base + limit wraps past 4 GiB, else the segment is cut to end at 4 GiB from the base page",
      `base + (limit + 1) = ${hex(sum)}`,
    );
    if (bad) newLimit = (2 ** 32 - (base & ~0xfff)) % 2 ** 32;
  } else {
    const bad = sum <= base || sum > max;
    add(
      "limit",
      !bad,
      `expand-up / code: base < base + limit + 1 ≤ GUEST_SEGMENT_MAX_ADDR (${
        hex(max)
      })`,
      `base + (limit + 1) = ${hex(sum)}${sum <= base ? " (wrapped)" : ""}`,
    );
    if (bad) newLimit = (max - base) >>> 0;
  }
  if (newLimit === undefined) return accept("limit stays below Xen's area");
  add(
    "G = 1 to truncate",
    d.g,
    "only a page-granular limit is truncated; a byte-granular one is refused",
    `G = ${d.g ? 1 : 0}`,
  );
  if (!d.g) {
    return refuse(
      'limit reaches Xen\'s area and G = 0: refused (Xen: "too dangerous; too hard to work out")',
    );
  }
  const raw = ((Math.floor(newLimit / 4096) - 1) >>> 0) & 0xfffff;
  const nlo = ((lo & ~0xffff) | (raw & 0xffff)) >>> 0;
  const nhi = ((hi & ~0xf0000) | (raw & 0xf0000)) >>> 0;
  return showCheck({
    verdict: "truncated",
    reason: `limit truncated to ${
      hex(describeSegment(decodeDescriptor(nlo, nhi)).effectiveLimit)
    } so the segment stops below ${hex(max)}`,
    given,
    installed: [nlo, nhi],
    checks,
  });
}

/** Display wrapper for a {@linkcode DescriptorCheck}. */
function showCheck(c: DescriptorCheck): DescriptorCheck {
  Object.defineProperty(c, Symbol.for("Jupyter.display"), {
    value: () => ({
      "text/plain": descriptorCheckToText(c),
      "text/html": descriptorCheckToHtml(c),
    }),
  });
  Object.defineProperty(c, Symbol.for("Deno.customInspect"), {
    value: () => descriptorCheckToText(c),
  });
  return Object.freeze(c);
}

/** A labelled range of linear addresses in a layout. */
export interface LayoutRegion extends StripRegion {}

/** Options for {@linkcode xen32Layout}. */
export interface Xen32Options {
  /**
   * End of the guest segments (exclusive). Default `XEN32.RO_MPT_VIRT_END`
   * (0xFC400000, as in Xen); 0xFC000000 gives the book's picture.
   */
  guestSegmentMax?: number;
}

/** Ring names of the Xen layouts. */
export type XenActor = "xen" | "guest-kernel" | "guest-user";

/**
 * The 32-bit Xen address space: a GDT with Xen's flat ring-0 segments and
 * the guest's truncated ring-1/ring-3 segments, an IDT (hypercall gate
 * 0x82 with DPL 1, the guest's fast system-call trap 0x80 with DPL 3),
 * the TSS ring-1 stack the guest registered, and one 32-bit page table
 * holding the guest's pages and Xen's supervisor pages. Build with
 * {@linkcode xen32Layout}.
 *
 * @example A guest installs a flat segment: Xen truncates it.
 * ```ts
 * import { Xen32System, XEN32 } from "./xen.ts";
 * import { segmentDescriptor } from "./descriptor.ts";
 * import assert from "node:assert/strict";
 * const xen = new Xen32System();
 * assert.equal(xen.updateDescriptor(8, ...segmentDescriptor({ kind: "data", dpl: 3 })).verdict, "truncated");
 * xen.enter("guest-user");
 * assert.equal(xen.segmentation.load("DS", Xen32System.selector(8, 3)).ok, true);
 * assert.equal(xen.access(XEN32.RO_MPT_VIRT_END).stoppedBy?.name, "limit");
 * ```
 */
export class Xen32System implements ProtectionMachine {
  /** Machine memory. */
  readonly memory: PhysicalMemory;
  /** The GDT (Xen's entries at 0xE000 bytes). */
  readonly gdt: DescriptorTable;
  /** The IDT. */
  readonly idt: DescriptorTable;
  /** The (one) page table of the address space. */
  readonly pageTable: PageTable;
  /** Paging side of the processor (32-bit paging, CR0.WP = 1). */
  readonly cpu: Cpu;
  /** Segmentation side of the processor. */
  readonly segmentation: Segmentation;
  /** End of the guest segments (exclusive). */
  readonly guestSegmentMax: number;
  /** Labelled linear ranges (for the address-space strip). */
  readonly regions: readonly LayoutRegion[];
  /** Addresses of interest: guest user, guest kernel, RO M2P, Xen. */
  readonly addresses: Readonly<{
    userText: number;
    userData: number;
    kernelText: number;
    kernelData: number;
    kernelStack: number;
    m2p: number;
    xenPrivate: number;
    xenText: number;
  }>;

  /** Build the layout (see {@linkcode xen32Layout}). */
  constructor(options: Xen32Options = {}) {
    const max = options.guestSegmentMax ?? XEN32.RO_MPT_VIRT_END;
    if (
      !Number.isInteger(max) || max % 4096 !== 0 || max < 0xc0400000 ||
      max > XEN32.RO_MPT_VIRT_END
    ) {
      throw new RangeError(
        `guestSegmentMax ${
          String(max)
        } is invalid: expected a page-aligned address in [0xc0400000, 0xfc400000]`,
      );
    }
    this.guestSegmentMax = max;
    const memory = new PhysicalMemory({ size: 64 * 2 ** 20, name: "machine" });
    this.memory = memory;
    const gdt = new DescriptorTable(memory, {
      base: 0x10000,
      limit: (XEN32.LAST_RESERVED_GDT_ENTRY + 1) * 8 - 1,
      kind: "gdt",
    });
    const r = XEN32.FIRST_RESERVED_GDT_ENTRY;
    gdt.write(r + 1, ...segmentDescriptor({ kind: "code", dpl: 0 }));
    gdt.write(r + 2, ...segmentDescriptor({ kind: "data", dpl: 0 }));
    gdt.write(
      r + 3,
      ...segmentDescriptor({ kind: "code", dpl: 1, limit: max - 1 }),
    );
    gdt.write(
      r + 4,
      ...segmentDescriptor({ kind: "data", dpl: 1, limit: max - 1 }),
    );
    gdt.write(
      r + 5,
      ...segmentDescriptor({ kind: "code", dpl: 3, limit: max - 1 }),
    );
    gdt.write(
      r + 6,
      ...segmentDescriptor({ kind: "data", dpl: 3, limit: max - 1 }),
    );
    this.gdt = gdt;
    const a = {
      userText: 0x0804_8000,
      userData: 0x0804_c000,
      kernelText: 0xc010_0000,
      kernelData: 0xc020_0000,
      kernelStack: 0xc030_0000,
      m2p: XEN32.HYPERVISOR_VIRT_START,
      xenPrivate: XEN32.RO_MPT_VIRT_END,
      xenText: 0xff00_0000,
    };
    this.addresses = Object.freeze(a);
    const idt = new DescriptorTable(memory, {
      base: 0x20000,
      limit: 256 * 8 - 1,
      kind: "idt",
    });
    idt.write(
      14,
      ...gateDescriptor({
        gate: "interrupt",
        selector: XEN32.HYPERVISOR_CS,
        offset: a.xenText + 0x100,
        dpl: 0,
      }),
    );
    idt.write(
      0x80,
      ...gateDescriptor({
        gate: "trap",
        selector: XEN32.FLAT_RING1_CS,
        offset: a.kernelText + 0x800,
        dpl: 3,
      }),
    );
    idt.write(
      XEN32.HYPERCALL_VECTOR,
      ...gateDescriptor({
        gate: "interrupt",
        selector: XEN32.HYPERVISOR_CS,
        offset: a.xenText + 0x200,
        dpl: 1,
      }),
    );
    this.idt = idt;
    const allocator = new FrameAllocator(memory, {
      start: 0x100000,
      end: 0x400000,
    });
    const pt = new PageTable(memory, { format: X86_32, allocator });
    this.pageTable = pt;
    pt.map(a.userText, 0x40_0000, { user: true, writable: false });
    pt.map(a.userData, 0x40_1000, { user: true });
    pt.map(a.kernelText, 0x50_0000, { writable: false });
    pt.map(a.kernelData, 0x50_1000);
    pt.map(a.kernelStack, 0x50_2000);
    pt.map(a.m2p, 0x60_0000, { writable: false });
    pt.map(a.xenPrivate, 0x70_0000, { global: true });
    pt.map(a.xenText, 0x70_1000, { writable: false, global: true });
    this.cpu = new Cpu(memory, { format: X86_32, cr3: pt.root, wp: true });
    this.segmentation = new Segmentation({
      gdt,
      idt,
      tss: {
        ss0: XEN32.HYPERVISOR_DS,
        esp0: a.xenText + 0x2000,
        ss1: XEN32.FLAT_RING1_DS,
        esp1: a.kernelStack + 0x1000,
        ss2: 0,
        esp2: 0,
      },
    });
    const end = 2 ** 32;
    this.regions = Object.freeze([
      {
        from: 0,
        to: 0xc000_0000,
        label: "guest user (ring 3)",
        owner: "guest-user",
      },
      {
        from: 0xc000_0000,
        to: XEN32.HYPERVISOR_VIRT_START,
        label: "guest kernel (ring 1)",
        owner: "guest-kernel",
      },
      {
        from: XEN32.HYPERVISOR_VIRT_START,
        to: XEN32.RO_MPT_VIRT_END,
        label: "read-only M2P",
        owner: "xen-shared",
      },
      {
        from: XEN32.RO_MPT_VIRT_END,
        to: end,
        label: "Xen (ring 0)",
        owner: "xen",
      },
    ] as LayoutRegion[]);
    this.enter("guest-kernel");
  }

  /** Switch the processor to Xen (ring 0), the guest kernel (ring 1) or guest user (ring 3). */
  enter(who: XenActor): void {
    if (who === "xen") {
      this.segmentation.enter(0, {
        cs: XEN32.HYPERVISOR_CS,
        ss: XEN32.HYPERVISOR_DS,
        ds: XEN32.HYPERVISOR_DS,
        es: XEN32.HYPERVISOR_DS,
      });
    } else if (who === "guest-kernel") {
      this.segmentation.enter(1, {
        cs: XEN32.FLAT_RING1_CS,
        ss: XEN32.FLAT_RING1_DS,
        ds: XEN32.FLAT_RING1_DS,
        es: XEN32.FLAT_RING1_DS,
      });
    } else if (who === "guest-user") {
      this.segmentation.enter(3, {
        cs: XEN32.FLAT_RING3_CS,
        ss: XEN32.FLAT_RING3_DS,
        ds: XEN32.FLAT_RING3_DS,
        es: XEN32.FLAT_RING3_DS,
      });
    } else {
      throw new RangeError(
        `actor "${
          String(who)
        }" is invalid: expected "xen", "guest-kernel" or "guest-user"`,
      );
    }
    this.cpu.cpl = this.segmentation.cpl;
  }

  /** Run one reference through segmentation then paging at the current ring. */
  access(offset: number, access: SegmentAccess = {}): ProtectionRecord {
    return checkAccess(this, offset, access);
  }

  /**
   * The guest's `HYPERVISOR_update_descriptor`: Xen's `check_descriptor`
   * decides; an accepted or truncated descriptor is written to GDT entry
   * `index`. Entries in Xen's reserved page are refused.
   */
  updateDescriptor(index: number, lo: number, hi: number): DescriptorCheck {
    if (!this.gdt.contains(index)) {
      throw new RangeError(
        `GDT index ${String(index)} is invalid: expected an integer in [0, ${
          this.gdt.entries - 1
        }]`,
      );
    }
    if (index >= XEN32.FIRST_RESERVED_GDT_ENTRY) {
      return showCheck({
        verdict: "refused",
        reason:
          `entry ${index} lies in Xen's reserved GDT page (entries ${XEN32.FIRST_RESERVED_GDT_ENTRY}–${XEN32.LAST_RESERVED_GDT_ENTRY})`,
        given: [lo >>> 0, hi >>> 0],
        checks: [{
          stage: "privilege",
          name: "entry",
          passed: false,
          rule: "guests may not write Xen's reserved GDT entries",
          detail: `index ${index}`,
        }],
      });
    }
    const c = checkDescriptor(lo, hi, {
      guestSegmentMax: this.guestSegmentMax,
    });
    if (c.installed) this.gdt.write(index, c.installed[0], c.installed[1]);
    return showCheck({ ...c });
  }

  /** Selector of a guest GDT entry with the given RPL. */
  static selector(index: number, rpl: number): number {
    return (index << 3) | rpl;
  }

  /** Jupyter display: the address-space strip. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": this.toString(),
      "image/svg+xml": xen32LayoutSvg({
        regions: this.regions,
        limits: this.#limits(),
        title:
          "32-bit Xen: one address space, segments keep rings 1 and 3 out of Xen",
      }),
    };
  }

  #limits() {
    const lim = (sel: number) => {
      const f = this.gdt.fields(parseSelector(sel).index)!;
      return describeSegment(f).effectiveLimit;
    };
    return [
      {
        label: "ring 0 (Xen) segments",
        limit: lim(XEN32.HYPERVISOR_DS),
        ring: 0,
      },
      {
        label: "ring 1 (guest kernel) segments",
        limit: lim(XEN32.FLAT_RING1_DS),
        ring: 1,
      },
      {
        label: "ring 3 (guest user) segments",
        limit: lim(XEN32.FLAT_RING3_DS),
        ring: 3,
      },
    ];
  }

  /** The strip's limit bars (for custom figures). */
  get segmentLimits(): { label: string; limit: number; ring: number }[] {
    return this.#limits();
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }

  /** Summary. */
  toString(): string {
    const lines = this.regions.map((r) =>
      `0x${r.from.toString(16).padStart(8, "0")}–0x${
        (r.to - 1).toString(16).padStart(8, "0")
      } ${r.label}`
    );
    for (const l of this.#limits()) {
      lines.push(`${l.label}: limit 0x${l.limit.toString(16)}`);
    }
    return lines.join("\n");
  }
}

/**
 * Build the 32-bit Xen layout.
 *
 * @example Each check stops a different access.
 * ```ts
 * import { xen32Layout } from "./xen.ts";
 * import assert from "node:assert/strict";
 * const xen = xen32Layout();
 * xen.enter("guest-kernel");
 * assert.equal(xen.access(0xfc40_0000).stoppedBy?.name, "limit");          // Xen: segment limit
 * assert.equal(xen.access(0xfc00_0000, { kind: "write" }).stoppedBy?.name, "R/W"); // RO M2P: paging
 * assert.equal(xen.access(0xc020_0000).ok, true);                           // own data
 * xen.enter("guest-user");
 * assert.equal(xen.access(0xc020_0000).stoppedBy?.name, "U/S");            // kernel page: paging
 * xen.enter("xen");
 * assert.equal(xen.access(0xfc40_0000).pa, 0x70_0000);                      // Xen itself
 * ```
 */
export function xen32Layout(options: Xen32Options = {}): Xen32System {
  return new Xen32System(options);
}

/**
 * Constants of x86-64 Xen (`asm-x86/config.h`, `public/arch-x86/xen-x86_64.h`).
 *
 * @example
 * ```ts
 * import { XEN64 } from "./xen.ts";
 * import assert from "node:assert/strict";
 * assert.equal(Number((XEN64.RESERVED_START >> 39n) & 511n), XEN64.FIRST_SLOT);
 * assert.equal(Number(((XEN64.RESERVED_END - 1n) >> 39n) & 511n), XEN64.LAST_SLOT);
 * ```
 */
export const XEN64: Readonly<{
  RESERVED_START: bigint;
  RESERVED_END: bigint;
  FIRST_SLOT: number;
  LAST_SLOT: number;
  XEN_TEXT: bigint;
  DIRECTMAP: bigint;
  GUEST_KERNEL: bigint;
  HYPERVISOR_CS: number;
  FLAT_RING3_CS64: number;
  FLAT_RING3_SS64: number;
}> = Object.freeze({
  /** Start of Xen's range (PML4 slot 256). */
  RESERVED_START: 0xffff_8000_0000_0000n,
  /** End of Xen's range, exclusive (slot 272 starts the guest's). */
  RESERVED_END: 0xffff_8800_0000_0000n,
  /** First reserved PML4 slot. */
  FIRST_SLOT: 256,
  /** Last reserved PML4 slot. */
  LAST_SLOT: 271,
  /** Xen text (slot 261). */
  XEN_TEXT: 0xffff_82d0_8000_0000n,
  /** Xen's 1:1 map of machine memory (slots 262–271). */
  DIRECTMAP: 0xffff_8300_0000_0000n,
  /** Where a Linux PV guest's direct map starts (slot 272). */
  GUEST_KERNEL: 0xffff_8800_0000_0000n,
  /** Xen's ring-0 64-bit code selector. */
  HYPERVISOR_CS: 0xe008,
  /** Guest 64-bit code, ring 3 (kernel and user alike). */
  FLAT_RING3_CS64: 0xe033,
  /** Guest stack, ring 3. */
  FLAT_RING3_SS64: 0xe02b,
});

/** One step of the system-call bounce. */
export interface BounceStep {
  /** Short name, e.g. "syscall". */
  readonly name: string;
  /** Who runs. */
  readonly actor: XenActor;
  /** CPL during the step. */
  readonly cpl: number;
  /** Which table CR3 names during the step. */
  readonly table: "user" | "kernel";
  /** CR3 (root address) during the step. */
  readonly cr3: number;
  /** What happens (with Xen's function names). */
  readonly action: string;
  /** An access made at this step, showing what is reachable. */
  readonly probe?: ProtectionRecord;
}

/**
 * The steps of a guest system call on x86-64 Xen, with rich display.
 *
 * @example
 * ```ts
 * import { xen64Layout } from "./xen.ts";
 * import assert from "node:assert/strict";
 * const b = xen64Layout().syscallBounce();
 * assert.equal(b.ringTransitions, 4);
 * assert.equal(b.steps[0].table, "user");
 * ```
 */
export class SyscallBounce {
  /** Steps in order. */
  readonly steps: readonly BounceStep[];

  /** Wrap steps. */
  constructor(steps: readonly BounceStep[]) {
    this.steps = Object.freeze([...steps]);
    Object.freeze(this);
  }

  /** Number of CR3 writes. */
  get cr3Switches(): number {
    let n = 0;
    for (let i = 1; i < this.steps.length; i++) {
      if (this.steps[i].cr3 !== this.steps[i - 1].cr3) n++;
    }
    return n;
  }

  /** Number of privilege-level changes. */
  get ringTransitions(): number {
    let n = 0;
    for (let i = 1; i < this.steps.length; i++) {
      if (this.steps[i].cpl !== this.steps[i - 1].cpl) n++;
    }
    return n;
  }

  /** Jupyter display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": bounceToText(this.steps),
      "text/html": bounceToHtml(this.steps),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return bounceToText(this.steps);
  }
}

/**
 * x86-64 Xen with one paravirtualized guest: a kernel page table and a
 * user page table sharing Xen's PML4 slots 256–271 (supervisor-only) and
 * the guest's user mappings; the guest kernel's mappings are only in the
 * kernel table. Build with {@linkcode xen64Layout}.
 *
 * @example
 * ```ts
 * import { Xen64System } from "./xen.ts";
 * import assert from "node:assert/strict";
 * const xen = new Xen64System();
 * xen.enter("guest-kernel");
 * assert.equal(xen.table, "kernel");
 * assert.equal(xen.segmentation.cpl, 3);
 * ```
 */
export class Xen64System implements ProtectionMachine {
  /** Machine memory. */
  readonly memory: PhysicalMemory;
  /** Guest kernel page table (Xen's `guest_table`). */
  readonly kernelTable: PageTable;
  /** Guest user page table (Xen's `guest_table_user`). */
  readonly userTable: PageTable;
  /** Paging side of the processor. */
  readonly cpu: Cpu;
  /** Segmentation (64-bit mode: limits ignored). */
  readonly segmentation: Segmentation;
  /** Addresses of interest. */
  readonly addresses: Readonly<{
    userText: number;
    userData: number;
    kernelData: bigint;
    kernelStack: bigint;
    xenText: bigint;
    xenDirectMap: bigint;
  }>;
  #actor: XenActor = "guest-user";

  /** Build the layout (see {@linkcode xen64Layout}). */
  constructor() {
    const memory = new PhysicalMemory({ size: 256 * 2 ** 20, name: "machine" });
    this.memory = memory;
    const allocator = new FrameAllocator(memory, {
      start: 0x100000,
      end: 0x800000,
    });
    const kt = new PageTable(memory, { format: X86_64_4LEVEL, allocator });
    const ut = new PageTable(memory, { format: X86_64_4LEVEL, allocator });
    this.kernelTable = kt;
    this.userTable = ut;
    const a = {
      userText: 0x40_0000,
      userData: 0x60_0000,
      kernelData: XEN64.GUEST_KERNEL,
      kernelStack: XEN64.GUEST_KERNEL + 0x1000n,
      xenText: XEN64.XEN_TEXT,
      xenDirectMap: XEN64.DIRECTMAP,
    };
    this.addresses = Object.freeze(a);
    // Xen: supervisor, global, in the kernel table first
    kt.map(a.xenText, 0x80_0000, { writable: false, global: true });
    kt.map(a.xenDirectMap, 0x0, { global: true });
    // share Xen's slots into the user table (Xen's init_xen_l4_slots copies the L4 entries)
    for (let slot = XEN64.FIRST_SLOT; slot <= XEN64.LAST_SLOT; slot++) {
      const lo = memory.read32(kt.root + slot * 8);
      const hi = memory.read32(kt.root + slot * 8 + 4);
      if (lo & 1) {
        const va = BigInt.asUintN(64, (0xffffn << 48n) | (BigInt(slot) << 39n));
        ut.writeEntry(4, ut.root + slot * 8, lo, hi, LinearAddress.from(va));
      }
    }
    // guest user pages: in both tables, user, global (adjust_guest_l1e)
    for (const t of [kt, ut]) {
      t.map(a.userText, 0x90_0000, {
        user: true,
        writable: false,
        global: true,
      });
      t.map(a.userData, 0x90_1000, { user: true, global: true });
    }
    // guest kernel pages: kernel table only; U/S = 1 because the guest kernel runs in ring 3
    kt.map(a.kernelData, 0xa0_0000, { user: true });
    kt.map(a.kernelStack, 0xa0_1000, { user: true });
    this.cpu = new Cpu(memory, { format: X86_64_4LEVEL, cr3: ut.root, cpl: 3 });
    const gdt = new DescriptorTable(memory, { base: 0x10000, limit: 0xefff });
    const r = XEN32.FIRST_RESERVED_GDT_ENTRY;
    gdt.write(
      r + 1,
      ...segmentDescriptor({ kind: "code", dpl: 0, l: true, db: false }),
    );
    gdt.write(r + 2, ...segmentDescriptor({ kind: "data", dpl: 0 }));
    gdt.write(r + 4, ...segmentDescriptor({ kind: "code", dpl: 3 }));
    gdt.write(r + 5, ...segmentDescriptor({ kind: "data", dpl: 3 }));
    gdt.write(
      r + 6,
      ...segmentDescriptor({ kind: "code", dpl: 3, l: true, db: false }),
    );
    this.segmentation = new Segmentation({ gdt, longMode: true });
    this.enter("guest-user");
  }

  /** Who runs now. */
  get actor(): XenActor {
    return this.#actor;
  }

  /** Which table CR3 names now. */
  get table(): "user" | "kernel" {
    return this.cpu.root === this.kernelTable.root ? "kernel" : "user";
  }

  /**
   * Switch to Xen (ring 0, CR3 unchanged: Xen is in every table), the guest
   * kernel (ring 3, kernel table) or guest user (ring 3, user table).
   */
  enter(who: XenActor): void {
    if (who === "xen") {
      this.segmentation.enter(0, { cs: XEN64.HYPERVISOR_CS, ss: 0 });
    } else if (who === "guest-kernel" || who === "guest-user") {
      const root = who === "guest-kernel"
        ? this.kernelTable.root
        : this.userTable.root;
      if (this.cpu.root !== root) {
        this.#toggle(who === "guest-kernel" ? "kernel" : "user");
      }
      this.segmentation.enter(3, {
        cs: XEN64.FLAT_RING3_CS64,
        ss: XEN64.FLAT_RING3_SS64,
      });
    } else {
      throw new RangeError(
        `actor "${
          String(who)
        }" is invalid: expected "xen", "guest-kernel" or "guest-user"`,
      );
    }
    this.#actor = who;
    this.cpu.cpl = this.segmentation.cpl;
  }

  /** Xen's `toggle_guest_mode` CR3 switch (called while in Xen). */
  #toggle(to: "kernel" | "user"): void {
    const root = to === "kernel" ? this.kernelTable.root : this.userTable.root;
    const r = this.cpu.movCr3(root);
    if (r.kind !== "ok") throw new Error(`MOV CR3: ${r.message}`);
  }

  /** One reference at the current ring and table. */
  access(va: number | bigint, access: SegmentAccess = {}): ProtectionRecord {
    return checkAccess(this, va, access);
  }

  /**
   * A guest user's system call on x86-64 Xen as a list of steps (SYSCALL →
   * Xen's `lstar_enter` → `switch_to_kernel`/`toggle_guest_mode` (CR3 ←
   * kernel table) → bounce frame → guest kernel's syscall callback in ring 3
   * → `HYPERVISOR_iret` → `toggle_guest_mode` (CR3 ← user table) → back to
   * user), each with CPL and CR3 and an access that shows what is reachable
   * then. Starts and ends in guest user mode.
   */
  syscallBounce(): SyscallBounce {
    this.enter("guest-user");
    const a = this.addresses;
    const steps: BounceStep[] = [];
    const step = (
      name: string,
      action: string,
      probe?: [number | bigint, SegmentAccess?],
    ) => {
      steps.push({
        name,
        actor: this.#actor,
        cpl: this.segmentation.cpl,
        table: this.table,
        cr3: this.cpu.root,
        action,
        probe: probe ? this.access(probe[0], probe[1]) : undefined,
      });
    };
    step(
      "syscall",
      "guest user executes SYSCALL; its table does not map the guest kernel",
      [a.kernelData],
    );
    this.enter("xen");
    step(
      "lstar_enter",
      "the CPU enters Xen at ring 0 (LSTAR); Xen's code is mapped in the user table too",
      [a.xenText, { kind: "fetch" }],
    );
    this.#toggle("kernel");
    step(
      "toggle_guest_mode",
      "Xen switches CR3 to the guest kernel table (switch_to_kernel)",
      [a.kernelStack, { kind: "write" }],
    );
    step(
      "create_bounce_frame",
      "Xen writes a return frame on the guest kernel stack",
    );
    this.enter("guest-kernel");
    step(
      "syscall callback",
      "Xen returns to the guest kernel's syscall entry in ring 3 (kernel table)",
      [a.kernelData],
    );
    step(
      "handle",
      "the guest kernel runs the system call; it can reach user memory too",
      [a.userData, { kind: "write" }],
    );
    step(
      "HYPERVISOR_iret",
      "the guest kernel cannot return to user itself: it makes the iret hypercall (SYSCALL into Xen)",
    );
    this.enter("xen");
    step("do_iret", "Xen at ring 0 pops the frame", [a.xenText, {
      kind: "fetch",
    }]);
    this.#toggle("user");
    step("toggle_guest_mode", "Xen switches CR3 back to the user table");
    this.enter("guest-user");
    step(
      "sysret",
      "back in guest user mode; guest kernel memory is unmapped again",
      [a.kernelData],
    );
    return new SyscallBounce(steps);
  }
}

/**
 * Build the x86-64 Xen layout.
 *
 * @example User access to guest-kernel memory: not present in the user table.
 * ```ts
 * import { xen64Layout } from "./xen.ts";
 * import assert from "node:assert/strict";
 * const xen = xen64Layout();
 * xen.enter("guest-user");
 * const r = xen.access(xen.addresses.kernelData);
 * assert.equal(r.outcome.kind === "fault" && r.outcome.exception, "#PF");
 * assert.equal(r.stoppedBy?.name, "present"); // not U/S: the page is a user page
 * xen.enter("guest-kernel");
 * assert.equal(xen.access(xen.addresses.kernelData).ok, true);
 * assert.equal(xen.access(xen.addresses.xenText).stoppedBy?.name, "U/S"); // Xen is supervisor-only
 * assert.equal(xen.syscallBounce().cr3Switches, 2);
 * ```
 */
export function xen64Layout(): Xen64System {
  return new Xen64System();
}
