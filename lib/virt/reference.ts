/**
 * The reference MMU scheme: the definition of correct guest-visible
 * behaviour that the other schemes are tested against.
 *
 * Every access walks the guest's own tables in guest-physical memory with
 * memvirt's one walker (A/D bits written into the guest entries exactly as
 * the architecture says, SDM §4.8), then translates the resulting gpa
 * through the domain's P2M or memslots to a machine address and performs
 * the access there. It caches nothing — a TLB that is flushed before every
 * access — so its results depend on the guest's tables alone; a guest that
 * flushes as the architecture requires sees the same results from any
 * correct TLB-like scheme (shadow paging, nested paging with a TLB).
 *
 * It costs no VM exits except one `"mmio"` exit per access whose gpa has
 * no memory behind it (the device model would get it).
 *
 * @module
 */

import type { PagingMode } from "../paging/mode.ts";
import {
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "../paging/walker.ts";
import type { Memory } from "../memory/memory.ts";
import { GuestMemoryError } from "./guest_memory.ts";
import {
  BaseScheme,
  GUEST_GP,
  GUEST_PF,
  GUEST_UNBACKED,
  type GuestAccessState,
  type SchemeContext,
  type SchemeOptions,
} from "./scheme.ts";
import { hex64 } from "../address/address.ts";

/**
 * Guest walk in guest-physical memory, then P2M/memslot translation.
 *
 * @example
 * ```ts
 * import { Host } from "./host.ts";
 * import { ReferenceScheme } from "./reference.ts";
 * import { PageTable } from "../paging/builder.ts";
 * import { pagingMode } from "../paging/mode.ts";
 * import { X86_64_4LEVEL } from "../paging/format.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 16 * 2 ** 20, hypervisor: "kvm" });
 * const vm = host.createDomain({ memory: 2 ** 20 });
 * const mode = pagingMode(X86_64_4LEVEL);
 * const ref = new ReferenceScheme();
 * ref.attach({ host, domain: vm, memory: vm.memory, mode });
 * const pt = new PageTable(vm.memory.unwatched, { mode });
 * pt.map(0x1000, 0x5000, { user: true });
 * ref.loadCr3(pt.root);
 * assert.equal(ref.access(0x1008, { kind: "write", value: 7 }).outcome.kind, "ok");
 * assert.equal(pt.lookup(0x1000).steps[3].flags.dirty, true);   // D set in the guest PTE
 * assert.equal(ref.counters.extra.guestWalks, 1);
 * ```
 */
export class ReferenceScheme extends BaseScheme {
  /** "reference". */
  readonly name = "reference";
  #root = 0;
  #mode: PagingMode | undefined = undefined;
  #mem: Memory | undefined = undefined;
  #s = new WalkScratch();
  #walks = 0;
  #reads = 0;

  /** Create an unattached reference scheme. */
  constructor(options: SchemeOptions = {}) {
    super(options);
  }

  /** The current guest root table (gpa). */
  get root(): number {
    return this.#root;
  }

  /** Keep the mode and the (unwatched) guest memory. */
  protected override onAttach(context: SchemeContext): void {
    this.#mode = context.mode;
    // the walker's A/D writes are the "hardware's", not guest stores
    this.#mem = context.memory.unwatched;
  }

  /** Remember the root: there is nothing cached to flush. */
  protected override onLoadCr3(root: number): void {
    this.#root = root;
  }

  /** Guest walk, then the data access through the P2M or memslots. */
  protected performAccess(
    state: GuestAccessState,
    vaHi: number,
    vaLo: number,
    flags: number,
    size: number,
    value: number,
  ): number {
    const s = this.#s;
    let r: number;
    try {
      r = walkInto(s, this.#mode!, this.#mem!, this.#root, vaHi, vaLo, flags);
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      // a guest entry points at a gpa with no memory: the walk cannot go on
      this.#walks++;
      state.gpa = e.gpa;
      state.problem = e.problem;
      state.inWalk = true;
      this.vmExit(state, "mmio", hex64(vaHi, vaLo), e.gpa, "guest page walk");
      return GUEST_UNBACKED;
    }
    this.#walks++;
    this.#reads += s.steps;
    if (r === WALK_PF) {
      state.errorCode = s.errorCode;
      state.reason = s.reason;
      state.level = s.leafLevel;
      return GUEST_PF;
    }
    if (r === WALK_GP) {
      state.reason = s.reason;
      return GUEST_GP;
    }
    if (r !== WALK_OK) throw new Error(`internal: walk outcome ${r}`);
    const out = this.dataAccess(state, s.pa, flags, size, value);
    if (out === GUEST_UNBACKED) {
      this.vmExit(state, "mmio", hex64(vaHi, vaLo), s.pa);
    }
    return out;
  }

  /** Guest walks and the entries they read. */
  protected override extraCounters(): Record<string, number> {
    return { guestWalks: this.#walks, guestTableReads: this.#reads };
  }

  /** Zero them. */
  protected override resetExtraCounters(): void {
    this.#walks = this.#reads = 0;
  }
}
