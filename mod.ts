/**
 * memvirt — run the textbook on hypervisor memory virtualization.
 *
 * An exact model of x86 paging (32-bit, PAE, 4-level, 5-level; large pages;
 * every permission rule; A/D bits; faults with error codes — Intel SDM
 * Vol. 3 ch. 4), TLBs and paging-structure caches, and a generic radix
 * format for teaching geometries, with rich display in Jupyter and the REPL.
 *
 * @example Map a page, walk it, fault on it.
 * ```ts
 * import { PageTable, PhysicalMemory } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const pt = new PageTable(new PhysicalMemory({ size: 2 ** 30 }));
 * pt.map(0x40_0000, 0x1234_5000, { user: true, writable: false });
 * assert.equal(pt.walk(0x40_0abc, { user: true }).pa, 0x1234_5abc);
 * const w = pt.walk(0x40_0abc, { kind: "write", user: true });
 * assert.equal(w.outcome.kind, "page-fault");
 * ```
 *
 * @module
 */

export {
  type AddressLike,
  bitsOf,
  type Gfn,
  type Gpa,
  gpa,
  hex64,
  hexPhys,
  type Hpa,
  hpa,
  LinearAddress,
  MAX_PHYS_BITS,
  type Mfn,
  splitAddress,
} from "./lib/address/address.ts";
export {
  FrameAllocator,
  type FrameAllocatorOptions,
  MEMORY_CHUNK_BYTES,
  PhysicalMemory,
  type PhysicalMemoryOptions,
} from "./lib/memory/memory.ts";
export {
  type EntryBits,
  type LevelSpec,
  levelSpec,
  OSTEP_15BIT,
  PAE,
  pageSizeAt,
  type PagingFormat,
  radixFormat,
  type RadixOptions,
  validateFormat,
  X86_32,
  X86_64_4LEVEL,
  X86_64_5LEVEL,
} from "./lib/paging/format.ts";
export {
  type ModeTables,
  type PagingMode,
  pagingMode,
  type PagingModeOptions,
  pse36Limit,
} from "./lib/paging/mode.ts";
export {
  ACCESS_AC,
  ACCESS_FETCH,
  ACCESS_IMPLICIT,
  ACCESS_USER,
  ACCESS_WRITE,
  checkRights,
  type EntryMemory,
  FAULT_REASONS,
  type FaultReason,
  isCanonical,
  MAX_LEVELS,
  PFEC_ID,
  PFEC_P,
  PFEC_PK,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  Reason,
  RIGHT_U,
  RIGHT_W,
  RIGHT_X,
  WALK_GP,
  WALK_OK,
  WALK_PF,
  walkInto,
  WalkScratch,
} from "./lib/paging/walker.ts";
export {
  accessFlags,
  type AccessKind,
  type AccessOptions,
  type AddressField,
  checkPkru,
  checkRoot,
  checkVa,
  decodeEntry,
  decodeErrorCode,
  decodeRights,
  type EntryFlags,
  type GeneralProtection,
  type PageFault,
  type PageFaultErrorCode,
  type Rights,
  sizeName,
  type Translation,
  Walk,
  walk,
  type WalkAccess,
  type WalkOptions,
  type WalkOutcome,
  type WalkResume,
  type WalkStep,
  type WalkTarget,
} from "./lib/paging/record.ts";
export {
  encodeLeaf,
  encodeTable,
  type EntryChange,
  type EntryChangeKind,
  type EntryListener,
  hexEntry,
  type LeafOptions,
  type MapOptions,
  type Mapping,
  PageTable,
  type PageTableOptions,
  type Region,
  type TableInfo,
} from "./lib/paging/builder.ts";
export { Random } from "./lib/util/random.ts";
export { escapeXml } from "./lib/view/escape.ts";
export {
  type PageTableLike,
  pageTableToText,
  walkToText,
} from "./lib/view/text.ts";
export { walkToSvg } from "./lib/view/walk_svg.ts";
export { pageTableToHtml } from "./lib/view/table_html.ts";
