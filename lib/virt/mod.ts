/**
 * Hypervisor memory virtualization: a host that owns machine memory,
 * domains backed Xen-style (P2M/M2P, ballooning) or KVM-style (memslots
 * over the VMM's memory, host page table faulted in lazily), each with a
 * guest-physical memory view; a guest OS that builds its own page tables
 * in it; the {@linkcode MmuScheme} interface its accesses go through and
 * the reference scheme; and a seeded guest-activity generator for
 * differential tests.
 *
 * @example A Xen guest: a process writes, forks, and the child copies on write.
 * ```ts
 * import { GuestOs, Host } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const host = new Host({ memory: 64 * 2 ** 20, seed: 3 });
 * const vm = host.createDomain({ name: "vm1", memory: 4 * 2 ** 20 });
 * const os = new GuestOs(vm);                 // reference scheme
 * const init = os.spawn("init");
 * os.switchTo(init.pid);
 * const buf = os.mmap({ length: 4096 });
 * assert.equal(os.access(buf, { kind: "write", value: 7 }).result, "ok");
 * const child = os.fork();
 * os.switchTo(child.pid);
 * assert.equal(os.access(buf).value, 7);
 * assert.equal(os.access(buf, { kind: "write", value: 8 }).faults[0].resolution, "cow-copy");
 * assert.deepEqual(host.checkConsistency(), []);
 * ```
 *
 * @module
 */

export {
  FRAME_SHIFT,
  FRAME_SIZE,
  type FrameRun,
  FrameTable,
  INVALID_FRAME,
  MAX_TABLE_FRAMES,
  OWNER_FREE,
  OWNER_HYPERVISOR,
  runsOf,
} from "./frames.ts";
export {
  type DomainOf,
  type FrameOwner,
  Host,
  type HostCounters,
  type HostDomainSummary,
  type HostFrameAccess,
  type HostOptions,
  type HostSnapshot,
  type HypervisorFrameOptions,
  HypervisorFrameSource,
  type HypervisorKind,
  MAX_DOMAIN_ID,
  MAX_HOST_MEMORY,
  type Placement,
} from "./host.ts";
export {
  Domain,
  type DomainOptions,
  type DomainSnapshot,
  KvmDomain,
  MAX_GUEST_MEMORY,
  type Memslot,
  MEMSLOT_IDS,
  type MemslotSpec,
  type P2mListener,
  VMM_RAM_BASE,
  type VmmRegion,
  XenDomain,
} from "./domain.ts";
export {
  GPA_DESTROYED,
  GPA_HOST_OOM,
  GPA_HVA_UNMAPPED,
  GPA_NOT_OWNED,
  GPA_OUT_OF_RANGE,
  GPA_READ_ONLY,
  GPA_UNBACKED,
  type GpaProblem,
  gpaProblem,
  GuestMemoryError,
  GuestPhysicalMemory,
  type WriteWatcher,
} from "./guest_memory.ts";
export {
  BaseScheme,
  GUEST_GP,
  GUEST_OK,
  GUEST_PF,
  GUEST_UNBACKED,
  type GuestAccessOk,
  type GuestAccessOptions,
  type GuestAccessOutcome,
  type GuestAccessResult,
  GuestAccessState,
  type GuestAccessUnbacked,
  type MmuScheme,
  outcomeOf,
  type ParsedGuestAccess,
  parseGuestAccess,
  type PvHypercalls,
  type SchemeContext,
  type SchemeCounters,
  type SchemeEvent,
  type SchemeOptions,
  type TlbInvalidateListener,
} from "./scheme.ts";
export { ReferenceScheme } from "./reference.ts";
export { GuestFrameAllocator, type GuestFrameRole } from "./guest/frames.ts";
export {
  type AccessReport,
  type AccessResultKind,
  DIRECT_MAP,
  entryHex,
  type FaultRecord,
  type FaultResolution,
  GuestOs,
  type GuestOsCounters,
  type GuestOsOptions,
  type GuestOsSnapshot,
  KERNEL_HEAP,
  KERNEL_TEXT,
  MMAP_MIN,
  MMAP_TOP,
  type MmapOptions,
  parseProt,
  Process,
  type ProcessStats,
  type ProcessSummary,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type ProtLike,
  protText,
  USER_END,
  type Vma,
} from "./guest/os.ts";
export {
  ACTIVITY_ARENAS,
  type ActivityDifference,
  type ActivityGuestOptions,
  type ActivityOptions,
  type ActivityProt,
  type ActivityRecord,
  createActivityGuest,
  diffActivity,
  formatActivity,
  type GuestOp,
  guestVisibleState,
  minimizeActivity,
  randomGuestActivity,
  runActivity,
} from "./guest/activity.ts";
export {
  domainToHtml,
  domainToText,
  guestOsToHtml,
  guestOsToText,
  hostToHtml,
  hostToText,
  schemeToHtml,
  schemeToText,
} from "../view/virt_html.ts";
export {
  type DomainColor,
  domainColor,
  FREE_COLOR,
  HYPERVISOR_COLOR,
  type MachineBin,
  MIXED_COLOR,
  type P2mStripOptions,
  type P2mStripRow,
  p2mStripSvg,
} from "../view/virt_svg.ts";
export * from "./shadow/mod.ts";
export * from "./nested/mod.ts";
export * from "./pv/mod.ts";
export {
  type PageTypeRow,
  pageTypesToHtml,
  pageTypesToText,
  pvBatchToHtml,
  pvBatchToText,
  type PvBatchView,
  pvMulticallToHtml,
  pvMulticallToText,
  type PvMulticallView,
} from "../view/pv_html.ts";
