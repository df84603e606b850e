/**
 * `hap_enable` step by step (Xen xen/arch/x86/mm/hap/hap.c, book §7.4):
 * the steps in Xen's order, real frames from the host, the pool's
 * accounting, EPTP / nCR3, altp2m, per-vCPU monitor tables, validation
 * that allocates nothing on error, and the display.
 */
import assert from "node:assert/strict";
import { Host } from "../lib/virt/host.ts";
import {
  hapEnable,
  MAX_ALTP2M,
  MAX_NESTEDP2M,
} from "../lib/virt/nested/hap.ts";
import { hapTraceToHtml } from "../lib/view/hap_html.ts";

function setup() {
  const host = new Host({ memory: 32 * 2 ** 20, hypervisor: "xen" });
  const vm = host.createDomain({ memory: 2 ** 20 });
  return { host, vm };
}

Deno.test("hap_enable: Xen's order of steps, the pool they draw on", () => {
  const { host, vm } = setup();
  const free = host.freeFrames;
  const t = hapEnable(host, vm);
  assert.deepEqual(t.steps.map((s) => s.code.split("(")[0].split(" ")[0]), [
    "domain_pause",
    "hap_set_allocation",
    "d->arch.paging.alloc_page",
    "p2m_alloc_table",
    "p2m_alloc_table",
    "d->arch.paging.mode",
    "domain_unpause",
    "hap_paging_get_mode",
    "hap_make_monitor_table",
    "hap_update_cr3",
  ]);
  assert.deepEqual(
    t.steps.map((s) => s.phase),
    [...Array(7).fill("domain"), ...Array(3).fill("vcpu")],
  );
  // 256 real host frames, distinct; the tables come out of them
  assert.equal(host.freeFrames, free - 256);
  assert.equal(new Set(t.pool).size, 256);
  assert.ok(t.pool.includes(t.p2mRoot));
  assert.ok(t.pool.includes(t.monitorTables[0]));
  assert.equal(t.poolFree, 256 - 1 - MAX_NESTEDP2M - 1);
  assert.equal(t.steps[4].state["pool free"], 256 - 1 - MAX_NESTEDP2M);
  // EPTP: WB (6), walk length 4 (3 << 3), no A/D
  assert.equal(t.pointer, t.p2mRoot + 0x1e);
  assert.equal(
    t.steps[3].state["EPTP"],
    `0x${(t.p2mRoot + 0x1e).toString(16)}`,
  );
  assert.equal(t.steps[7].state["v mode"], "hap_paging_long_mode");
});

Deno.test("hap_enable: NPT (nCR3 = root), altp2m, several vCPUs, guest modes", () => {
  const { host, vm } = setup();
  const npt = hapEnable(host, vm, { stage: "npt", guestMode: "pae", vcpus: 2 });
  assert.equal(npt.pointer, npt.p2mRoot);
  assert.equal(npt.monitorTables.length, 2);
  assert.notEqual(npt.monitorTables[0], npt.monitorTables[1]);
  assert.equal(npt.steps.filter((s) => s.phase === "vcpu").length, 6);
  assert.equal(npt.steps[7].state["guest levels"], 3);
  const alt = hapEnable(host, vm, { altp2m: true, poolPages: 64 });
  assert.ok(alt.steps.some((s) => s.code.includes("altp2m_eptp")));
  assert.equal(alt.poolFree, 64 - 1 - MAX_NESTEDP2M - MAX_ALTP2M - 1);
});

Deno.test("hap_enable: bad options and a pool too small allocate nothing", () => {
  const { host, vm } = setup();
  const free = host.freeFrames;
  assert.throws(
    () => hapEnable(host, vm, { poolPages: 11 }),
    /pool of 11 pages is too small: the steps take 12/,
  );
  assert.throws(
    () => hapEnable(host, vm, { stage: "arm" as "ept" }),
    /stage "arm"/,
  );
  assert.throws(() => hapEnable(host, vm, { vcpus: -1 }), /vcpus -1/);
  assert.throws(
    () => hapEnable(host, vm, { stage: "npt", altp2m: true }),
    /altp2m is an Intel/,
  );
  assert.throws(
    () => hapEnable(host, vm, { guestMode: "v86" as "long" }),
    /guestMode "v86"/,
  );
  assert.equal(host.freeFrames, free);
});

Deno.test("hap_enable display: every step, escaped, text and HTML", () => {
  const { host } = setup();
  const vm = host.createDomain({ memory: 2 ** 20, name: "<guest>" });
  const t = hapEnable(host, vm, { nestedP2m: 2 });
  const b = (t as unknown as Record<symbol, () => Record<string, string>>)[
    Symbol.for("Jupyter.display")
  ]();
  assert.deepEqual(Object.keys(b).sort(), ["text/html", "text/plain"]);
  for (const s of t.steps) {
    assert.ok(b["text/plain"].includes(s.code), s.code);
  }
  assert.ok(b["text/html"].includes("&lt;guest&gt;"));
  assert.ok(!b["text/html"].includes("<guest>"));
  assert.equal(b["text/html"], hapTraceToHtml(t));
  assert.equal(
    (b["text/html"].match(/<tr><td>\d+<\/td><td><code>/g) ?? []).length,
    t.steps.length,
  );
});
