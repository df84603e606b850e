/**
 * Setting up hardware-assisted paging for a domain step by step, as Xen's
 * `hap_enable()` (xen/arch/x86/mm/hap/hap.c; book §7.4) and the per-vCPU
 * `hap_update_paging_modes()` do it, with real frames taken from the host:
 *
 * 1. `domain_pause` — nobody runs while the paging mode changes;
 * 2. `hap_set_allocation(d, 256)` — the domain's **paging pool** (256
 *    pages = 1 MiB by default), from which every HAP structure comes;
 * 3. `paging.alloc_page = hap_alloc_p2m_page` — the P2M and log-dirty code
 *    borrow pool pages from now on;
 * 4. `p2m_alloc_table(host p2m)` — the **P2M root**: the EPT (or NPT) root
 *    table, whose address goes into the EPTP (nCR3 on AMD);
 * 5. `p2m_alloc_table(nested_p2m[i])` — one root per nested P2M
 *    (MAX_NESTEDP2M = 10), for guests that run their own hypervisor;
 * 6. (with altp2m) the EPTP list page (MAX_EPTP = 512 entries, all
 *    INVALID_MFN) and MAX_ALTP2M = 10 alternate P2M roots;
 * 7. `d->arch.paging.mode = mode | PG_HAP_enable` — other users now see
 *    the new mode (for an HVM guest, mode = refcounts | translate |
 *    external);
 * 8. `domain_unpause`;
 *
 * then per vCPU (`hap_update_paging_modes`): the paging-mode table chosen
 * from the guest's CR0.PG / EFER.LMA / CR4.PAE (`hap_paging_get_mode`),
 * the **monitor table** (`hap_make_monitor_table`: Xen's own top-level
 * page table for this vCPU, from the pool; its address becomes the host
 * CR3 in the VMCS/VMCB), and `hap_update_cr3`: the guest CR3 is used as
 * is, only the ASID/VPID's translations are flushed.
 *
 * Not modelled: locking, preemption and error unwinding inside Xen
 * (a pool too small is refused up front, allocating nothing), the
 * contents of the monitor table, and the P2M entries themselves (the
 * {@linkcode NestedScheme} builds those lazily).
 *
 * @module
 */

import { hexPhys } from "../../address/address.ts";
import { EPT_4LEVEL, eptMode, eptp } from "../../paging/ept.ts";
import type { Host } from "../host.ts";
import type { Domain } from "../domain.ts";
import { hapTraceToHtml, hapTraceToText } from "../../view/hap_html.ts";

/** Xen's MAX_NESTEDP2M. */
export const MAX_NESTEDP2M = 10;
/** Xen's MAX_ALTP2M. */
export const MAX_ALTP2M = 10;
/** Xen's MAX_EPTP: EPTP-list entries in one page. */
export const MAX_EPTP = 512;

/** Guest paging state that selects the HAP paging-mode table. */
export type HapGuestMode = "real" | "protected" | "pae" | "long";

/** Options for {@linkcode hapEnable}. */
export interface HapEnableOptions {
  /** "ept" (Intel, default) or "npt" (AMD). */
  stage?: "ept" | "npt";
  /** EPT A/D flags in the EPTP (default false). */
  ad?: boolean;
  /** Paging-pool pages when the domain has none yet (default 256, as Xen). */
  poolPages?: number;
  /** Nested P2M roots (default MAX_NESTEDP2M = 10; 0 to leave them out). */
  nestedP2m?: number;
  /** Alternate P2Ms (default false; Intel only). */
  altp2m?: boolean;
  /** vCPUs that get a monitor table (default 1). */
  vcpus?: number;
  /** The guest's paging state when the vCPU's mode is chosen (default "long"). */
  guestMode?: HapGuestMode;
}

/** One step: the Xen code, what it does, the state it creates. */
export interface HapStep {
  /** 1-based order. */
  readonly n: number;
  /** "domain" (`hap_enable`) or "vcpu" (`hap_update_paging_modes`). */
  readonly phase: "domain" | "vcpu";
  /** The Xen function or statement. */
  readonly code: string;
  /** What it does, in a sentence. */
  readonly what: string;
  /** The state it created or changed, as name → value. */
  readonly state: Readonly<Record<string, string | number>>;
}

const GUEST_MODES: Record<HapGuestMode, [string, number]> = {
  real: ["hap_paging_real_mode", 1],
  protected: ["hap_paging_protected_mode", 2],
  pae: ["hap_paging_pae_mode", 3],
  long: ["hap_paging_long_mode", 4],
};

/**
 * The trace of one `hap_enable` (its steps) and what it built. Shown in
 * notebooks as a table of steps.
 *
 * @example
 * ```ts
 * import { hapEnable } from "./hap.ts";
 * import { Host } from "../host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "xen" });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const t = hapEnable(host, vm);
 * assert.equal(t.poolFree, 256 - 1 - 10 - 1); // P2M root, nested roots, monitor table
 * assert.equal(t.steps[0].code, "domain_pause(d)");
 * assert.match(t.toString(), /hap_set_allocation\(d, 256\)/);
 * ```
 */
export class HapEnableTrace {
  /** The steps, in order. */
  readonly steps: readonly HapStep[];
  /** The domain's name. */
  readonly domain: string;
  /** "ept" or "npt". */
  readonly stage: "ept" | "npt";
  /** Pool frames (machine addresses), in allocation order. */
  readonly pool: readonly number[];
  /** Pool pages still free after the steps. */
  readonly poolFree: number;
  /** The host P2M root (hpa). */
  readonly p2mRoot: number;
  /** The EPTP (EPT) or nCR3 (NPT) value that points at it. */
  readonly pointer: number;
  /** Monitor table per vCPU (hpa). */
  readonly monitorTables: readonly number[];

  /** Made by {@linkcode hapEnable}. */
  constructor(fields: {
    steps: readonly HapStep[];
    domain: string;
    stage: "ept" | "npt";
    pool: readonly number[];
    poolFree: number;
    p2mRoot: number;
    pointer: number;
    monitorTables: readonly number[];
  }) {
    this.steps = Object.freeze([...fields.steps]);
    this.domain = fields.domain;
    this.stage = fields.stage;
    this.pool = Object.freeze([...fields.pool]);
    this.poolFree = fields.poolFree;
    this.p2mRoot = fields.p2mRoot;
    this.pointer = fields.pointer;
    this.monitorTables = Object.freeze([...fields.monitorTables]);
  }

  /** Numbered text lines. */
  toString(): string {
    return hapTraceToText(this);
  }

  /** Jupyter rich display: the steps as a table. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return {
      "text/plain": hapTraceToText(this),
      "text/html": hapTraceToHtml(this),
    };
  }

  /** REPL display. */
  [Symbol.for("Deno.customInspect")](): string {
    return hapTraceToText(this);
  }
}

/**
 * Enable HAP for `domain` as Xen's `hap_enable()` does, then set up its
 * vCPUs' paging modes (`hap_update_paging_modes`), allocating the pool and
 * the tables from `host`'s frames. Returns the trace. Validates first and
 * allocates nothing on error (`RangeError` naming the bad option, or a
 * pool too small for what the steps take from it — Xen's -ENOMEM).
 *
 * @example
 * ```ts
 * import { hapEnable } from "./hap.ts";
 * import { Host } from "../host.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "xen" });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const t = hapEnable(host, vm, { nestedP2m: 0, ad: true });
 * assert.deepEqual(t.steps.map((s) => s.n), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
 * assert.equal(t.pointer, t.p2mRoot + 0x5e);   // WB, 4-level walk, A/D
 * assert.equal(t.steps[3].state["P2M root"], `0x${t.p2mRoot.toString(16)}`);
 * assert.throws(() => hapEnable(host, vm, { poolPages: 1 }), /pool of 1 pages is too small/);
 * ```
 */
export function hapEnable(
  host: Host,
  domain: Domain,
  options: HapEnableOptions = {},
): HapEnableTrace {
  const stage = options.stage ?? "ept";
  if (stage !== "ept" && stage !== "npt") {
    throw new RangeError(
      `stage "${String(stage)}" is invalid: expected "ept" or "npt"`,
    );
  }
  const count = (name: string, v: number, max: number) => {
    if (!Number.isInteger(v) || v < 0 || v > max) {
      throw new RangeError(
        `${name} ${String(v)} is invalid: expected an integer in [0, ${max}]`,
      );
    }
    return v;
  };
  const poolPages = count("poolPages", options.poolPages ?? 256, 1 << 20);
  const nested = count("nestedP2m", options.nestedP2m ?? MAX_NESTEDP2M, 64);
  const vcpus = count("vcpus", options.vcpus ?? 1, 128);
  const altp2m = options.altp2m ?? false;
  if (altp2m && stage === "npt") {
    throw new RangeError('altp2m is an Intel EPT feature: use stage "ept"');
  }
  const guestMode = options.guestMode ?? "long";
  if (!(guestMode in GUEST_MODES)) {
    throw new RangeError(
      `guestMode "${
        String(guestMode)
      }" is invalid: expected "real", "protected", "pae" or "long"`,
    );
  }
  const need = 1 + nested + (altp2m ? MAX_ALTP2M : 0) + vcpus;
  if (poolPages < need) {
    throw new RangeError(
      `hap_enable: a paging pool of ${poolPages} pages is too small: the steps take ${need} (P2M root, ${nested} nested P2M roots${
        altp2m ? `, ${MAX_ALTP2M} altp2m roots` : ""
      }, ${vcpus} monitor table${vcpus === 1 ? "" : "s"}); Xen returns -ENOMEM`,
    );
  }
  const frames = host.frameSource(`HAP pool of ${domain.name}`);
  const pool: number[] = [];
  for (let i = 0; i < poolPages; i++) pool.push(frames.alloc());
  let next = 0;
  const take = () => pool[next++];
  const hex = (a: number) => `0x${a.toString(16)}`;
  const steps: HapStep[] = [];
  const step = (
    phase: "domain" | "vcpu",
    code: string,
    what: string,
    state: Record<string, string | number>,
  ) => steps.push({ n: steps.length + 1, phase, code, what, state });

  step(
    "domain",
    "domain_pause(d)",
    "Stop the domain's vCPUs while its paging mode changes.",
    {
      domain: domain.name,
      paused: "yes",
    },
  );
  step(
    "domain",
    `hap_set_allocation(d, ${poolPages})`,
    "Give the domain its own paging pool: every HAP structure is allocated from it.",
    {
      "pool pages": poolPages,
      "pool size": `${poolPages * 4} KiB`,
      "first frame": hexPhys(pool[0]),
      "last frame": hexPhys(pool[poolPages - 1]),
    },
  );
  step(
    "domain",
    "d->arch.paging.alloc_page = hap_alloc_p2m_page",
    "Let the P2M and log-dirty code borrow pages from the pool.",
    { "P2M allocator": "hap_alloc_p2m_page", "P2M free": "hap_free_p2m_page" },
  );
  const root = take();
  const pointer = stage === "ept"
    ? eptp(eptMode(EPT_4LEVEL, { ad: options.ad ?? false }), root)
    : root;
  step(
    "domain",
    "p2m_alloc_table(p2m_get_hostp2m(d))",
    `Allocate the host P2M's root: the ${
      stage === "ept" ? "EPT PML4" : "NPT top-level table"
    } the hardware walks for every gpa.`,
    {
      "P2M root": hex(root),
      [stage === "ept" ? "EPTP" : "nCR3"]: hex(pointer),
      "pool free": poolPages - next,
    },
  );
  if (nested > 0) {
    const roots: number[] = [];
    for (let i = 0; i < nested; i++) roots.push(take());
    step(
      "domain",
      `p2m_alloc_table(d->arch.nested_p2m[i]), i < ${nested}`,
      "One root per nested P2M, for guests that run a hypervisor of their own.",
      {
        "nested P2M roots": `${hex(roots[0])} … ${hex(roots[nested - 1])}`,
        "pool free": poolPages - next,
      },
    );
  }
  if (altp2m) {
    const list = frames.alloc(); // alloc_xenheap_page: not from the pool
    const roots: number[] = [];
    for (let i = 0; i < MAX_ALTP2M; i++) roots.push(take());
    step(
      "domain",
      "d->arch.altp2m_eptp = alloc_xenheap_page()",
      `The EPTP list page (${MAX_EPTP} entries, all INVALID_MFN) for VMFUNC EPTP switching.`,
      { "EPTP list": hexPhys(list), entries: MAX_EPTP },
    );
    step(
      "domain",
      `p2m_alloc_table(d->arch.altp2m_p2m[i]), i < ${MAX_ALTP2M}`,
      "Roots of the alternate P2Ms (other views of the same guest memory).",
      {
        "altp2m roots": `${hex(roots[0])} … ${hex(roots[MAX_ALTP2M - 1])}`,
        "pool free": poolPages - next,
      },
    );
  }
  step(
    "domain",
    "d->arch.paging.mode = mode | PG_HAP_enable",
    "Publish the new paging mode: from now on the P2M is walked by the hardware.",
    {
      "paging mode":
        "PG_refcounts | PG_translate | PG_external | PG_HAP_enable",
    },
  );
  step("domain", "domain_unpause(d)", "Let the vCPUs run again.", {
    paused: "no",
  });
  const [modeName, levels] = GUEST_MODES[guestMode];
  const monitors: number[] = [];
  for (let v = 0; v < vcpus; v++) {
    const id = vcpus === 1 ? "v" : `v${v}`;
    step(
      "vcpu",
      `hap_paging_get_mode(${id})`,
      "Choose the paging-mode table from the guest's CR0.PG, EFER.LMA and CR4.PAE.",
      { [`${id} mode`]: modeName, "guest levels": levels },
    );
    const m = take();
    monitors.push(m);
    step(
      "vcpu",
      `hap_make_monitor_table(${id}); make_cr3(${id}, mmfn)`,
      "Xen's own top-level table for this vCPU, from the pool: the host CR3 in the VMCS/VMCB.",
      {
        "monitor table": hex(m),
        "host CR3": hex(m),
        "pool free": poolPages - next,
      },
    );
    step(
      "vcpu",
      `hap_update_cr3(${id})`,
      "The guest's CR3 is used as is (no shadow); only this vCPU's ASID/VPID translations are flushed.",
      { "hw CR3": "= guest CR3", flush: stage === "ept" ? "VPID" : "ASID" },
    );
  }
  return new HapEnableTrace({
    steps,
    domain: domain.name,
    stage,
    pool,
    poolFree: poolPages - next,
    p2mRoot: root,
    pointer,
    monitorTables: monitors,
  });
}
