/**
 * Xen PV direct paging: the page-type table, the hypervisor side
 * (`mmu_update`, `mmuext_op`, writable page tables, the invariant checker)
 * and the MMU scheme.
 *
 * @module
 */
export * from "./page_info.ts";
export * from "./mmu.ts";
export * from "./scheme.ts";
