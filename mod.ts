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
  defaultAllocator,
  FrameAllocator,
  type FrameAllocatorOptions,
  type FrameSource,
  type Memory,
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
  decodeModeEntry,
  decodeRights,
  type EntryFlags,
  FAULT_REASON_TEXT,
  type GeneralProtection,
  isLeafEntry,
  type ModeEntryFlags,
  type PageFault,
  type PageFaultErrorCode,
  readEntry,
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
export { type WalkSvgOptions, walkToSvg } from "./lib/view/walk_svg.ts";
export {
  type PageTableHtmlOptions,
  type PageTableSource,
  pageTableToHtml,
  type RegionLabel,
} from "./lib/view/table_html.ts";
export {
  CUSTOM_INSPECT,
  JUPYTER_DISPLAY,
  type MimeBundle,
  Rich,
  showPageTable,
  type ShowPageTableOptions,
  showWalk,
} from "./lib/view/display.ts";
export {
  type SpaceChain,
  type SpacesOptions,
  spacesToSvg,
} from "./lib/view/spaces_svg.ts";
export {
  type Cell,
  type RowsOptions,
  showRows,
  showSpaces,
} from "./lib/view/figures.ts";
export {
  COLORS,
  FONT_MONO,
  FONT_SANS,
  formatCount,
  hashId,
  type LevelColor,
  levelColor,
} from "./lib/view/style.ts";
export {
  checkPcid,
  type FlushOptions,
  type Replacement,
  Tlb,
  type TlbArrayInfo,
  type TlbArrayOptions,
  type TlbCounters,
  type TlbEntry,
  type TlbOptions,
  type TlbSizeClass,
  type TlbSnapshot,
  type TlbSplitOptions,
} from "./lib/tlb/tlb.ts";
export {
  PagingStructureCache,
  PSC_NAMES,
  type PscCounters,
  type PscEntry,
  type PscOptions,
  type PscSnapshot,
} from "./lib/tlb/psc.ts";
export {
  type AccessResult,
  Cpu,
  type CpuCounters,
  type CpuGpReason,
  type CpuOptions,
  type CpuSnapshot,
  CR0,
  CR4,
  EFER,
  type InstructionDone,
  type InstructionFault,
  type InstructionResult,
  type InvpcidDescriptor,
  type MovCr3Options,
  type TlbUse,
} from "./lib/cpu/cpu.ts";
export {
  type CacheViewOptions,
  cpuToHtml,
  cpuToText,
  pscEntryToText,
  pscToHtml,
  pscToText,
  tlbEntryToText,
  tlbToHtml,
  tlbToText,
} from "./lib/view/tlb_html.ts";
export * from "./lib/exercise/mod.ts";
export * from "./lib/kvm/mod.ts";
export * from "./lib/virt/mod.ts";
export {
  type ExitTimelineOptions,
  exitTimelineSvg,
  type ShadowPageRow,
  type ShadowPairEntry,
  shadowPairHtml,
  shadowPairText,
  type ShadowPairView,
  shadowSchemeHtml,
  shadowSchemeText,
} from "./lib/view/shadow_html.ts";
export * from "./lib/paging/ept.ts";
export {
  type NestedSvgOptions,
  nestedWalkToSvg,
} from "./lib/view/nested_svg.ts";
export * from "./lib/tlb/tagged.ts";
export * from "./lib/workload/trace.ts";
export * from "./lib/workload/replay.ts";
export * from "./lib/workload/progress.ts";
export * from "./lib/workload/record.ts";
export {
  barChart,
  type BarOptions,
  barSpec,
  Chart,
  type ChartOptions,
  dataTable,
  heatmap,
  type HeatmapOptions,
  heatmapSpec,
  lineChart,
  type LineOptions,
  lineSpec,
  renderChart,
  type Row as ChartRow,
  scatterChart,
  type ScatterOptions,
  scatterSpec,
  tidyRows,
  VEGA_LITE_MIME,
  VEGA_LITE_SCHEMA,
  type VegaLiteSpec,
} from "./lib/view/chart.ts";
export * from "./lib/protect/mod.ts";
export {
  type BounceStepView,
  bounceToHtml,
  bounceToText,
  descriptorCheckToHtml,
  descriptorCheckToText,
  type DescriptorCheckView,
  descriptorTableToHtml,
  descriptorTableToText,
  protectionRecordToHtml,
  protectionRecordToText,
  type ProtectionRecordView,
  type StripRegion,
  xen32LayoutSvg,
  type XenStripInput,
} from "./lib/view/protect_html.ts";
export * from "./lib/cost/mod.ts";
export {
  TlbFront,
  type TlbFrontCounters,
  type TlbFrontOptions,
} from "./lib/virt/tlb_front.ts";
export * from "./lib/workload/generators.ts";
export * from "./lib/workload/experiment.ts";
export {
  costModelToHtml,
  costModelToText,
  estimateToHtml,
  estimateToText,
  experimentToHtml,
  experimentToText,
  type ExperimentView,
} from "./lib/view/cost_html.ts";
export {
  type EptTableHtmlOptions,
  type EptTableSource,
  eptTableToHtml,
} from "./lib/view/table_html.ts";
export {
  type HapTraceLike,
  hapTraceToHtml,
  hapTraceToText,
} from "./lib/view/hap_html.ts";
