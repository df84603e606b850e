/**
 * Displays of hosts, domains, schemes and guest OSes: MIME bundles with
 * text/plain and HTML/SVG, well-formed markup, escaped labels, no ANSI,
 * bounded size for big and scattered domains.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  GuestOs,
  Host,
  type HypervisorKind,
  p2mStripSvg,
} from "../lib/virt/mod.ts";

const MiB = 2 ** 20;
const DISPLAY = Symbol.for("Jupyter.display");
const INSPECT = Symbol.for("Deno.customInspect");

type Displayable = {
  [DISPLAY](): Record<string, string>;
  [INSPECT](): string;
};

/** Check markup is well-formed XML (tags balanced, attributes quoted, entities valid); return the element names. */
function wellFormed(src: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const re =
    /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*(\/?)>|([<>])/g;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(src)) !== null) {
    const text = src.slice(last, m.index);
    for (const amp of text.matchAll(/&[^;\s]*;?/g)) {
      assert.match(
        amp[0],
        /^&(amp|lt|gt|quot|#39|#[0-9]+);$/,
        `bad entity ${amp[0]}`,
      );
    }
    last = re.lastIndex;
    assert.equal(
      m[5],
      undefined,
      `stray ${m[5]} at ${m.index}: ${src.slice(m.index - 30, m.index + 30)}`,
    );
    if (m[1] === "/") {
      assert.equal(stack.pop(), m[2], `</${m[2]}> at ${m.index}`);
    } else {
      names.push(m[2]);
      if (m[4] !== "/") stack.push(m[2]);
    }
  }
  assert.deepEqual(stack, [], "unclosed elements");
  return names;
}

function checkBundle(
  x: Displayable,
  maxBytes = 200_000,
): Record<string, string> {
  const b = x[DISPLAY]();
  assert.equal(typeof b["text/plain"], "string");
  for (const [mime, v] of Object.entries(b)) {
    assert.ok(!v.includes("\u001b["), `ANSI in ${mime}`);
    assert.ok(v.length < maxBytes, `${mime} is ${v.length} bytes`);
    if (mime !== "text/plain") wellFormed(v);
  }
  assert.equal(x[INSPECT](), b["text/plain"]);
  assert.equal(Deno.inspect(x), b["text/plain"]);
  return b;
}

for (const kind of ["xen", "kvm"] as const) {
  Deno.test(`${kind}: host, domain, scheme and guest OS display as bounded, escaped bundles`, () => {
    const host = new Host<HypervisorKind>({
      memory: 64 * MiB,
      hypervisor: kind,
      name: "h<1>",
    });
    const evil = `<script>alert("x")</script>&'`;
    const d = host.createDomain({ name: evil, memory: 4 * MiB });
    const os = new GuestOs(d, { name: evil });
    const p = os.spawn(evil);
    os.switchTo(p.pid);
    const a = os.mmap({ length: 8 * 4096, label: evil });
    for (let i = 0; i < 8; i++) {
      os.access(a + i * 4096, { kind: "write", value: i });
    }
    os.fork();
    for (const x of [host, d, os, os.scheme] as unknown as Displayable[]) {
      const b = checkBundle(x);
      const rich = Object.entries(b).filter(([m]) => m !== "text/plain").map((
        [, v],
      ) => v).join("");
      assert.doesNotMatch(rich, /<script>/);
      if (x !== (os.scheme as unknown)) assert.match(rich, /&lt;script&gt;/);
    }
    const hb = checkBundle(host as unknown as Displayable);
    assert.match(hb["text/plain"], new RegExp(`host "h<1>" \\(${kind}\\)`));
    assert.match(hb["text/html"], /<svg /);
    const ob = checkBundle(os as unknown as Displayable);
    assert.match(ob["text/plain"], /pid 1 .*\(running\)[\s\S]*8 resident/);
    assert.match(ob["text/plain"], /pid 2 /);
    const db = checkBundle(d as unknown as Displayable);
    if (kind === "kvm") {
      assert.match(
        db["text/plain"],
        /memslots:\n {2}0: gpa 0x0–0x3fffff → hva 0x7f0000000000/,
      );
    } else assert.match(db["text/plain"], /P2M runs \(gfn → mfn\):/);
    const sb = checkBundle(os.scheme as unknown as Displayable);
    assert.match(sb["text/plain"], /reference scheme\n {2}accesses/);
    assert.match(sb["text/plain"], /recent events/);
  });
}

Deno.test("big scattered domains stay bounded: aggregated bands, binned machine memory", () => {
  const host = new Host({ memory: 2 * 2 ** 30, seed: 4 });
  const big = host.createDomain({ name: "big", memory: 512 * MiB });
  for (let i = 0; i < 12; i++) host.createDomain({ memory: 4 * MiB });
  const row = big.stripRow(100);
  assert.equal(row.aggregated, true);
  assert.ok(row.runs.length <= 100);
  assert.ok(row.totalRuns > 10000);
  const svg = host.p2mStrip({ maxLines: 100, maxBins: 128 });
  const names = wellFormed(svg);
  assert.ok(names.filter((n) => n === "polygon").length <= 8 * 100);
  assert.ok(svg.length < 150_000, `${svg.length} bytes`);
  assert.match(svg, /5 more domain\(s\) not drawn/);
  assert.match(svg, /one band per bin/);
  const b = checkBundle(host as unknown as Displayable, 400_000);
  assert.match(b["text/plain"], /13 vm13\s+xen/);
  const d = checkBundle(big as unknown as Displayable);
  assert.match(d["text/plain"], /more runs not shown/);
  assert.throws(() => host.machineBins(0), /maxBins 0 is invalid/);
  assert.throws(
    () => p2mStripSvg(host.snapshot(), [], { width: 10 }),
    /width 10 is invalid/,
  );
});

Deno.test("the strip shows backed, resident and unbacked gfns and machine owners", () => {
  const host = new Host({ memory: 16 * MiB, hypervisor: "kvm" });
  const d = host.createDomain({
    name: "k",
    memory: MiB,
    addressSpace: 4 * MiB,
  });
  d.memory.write8(0, 1);
  const svg = host.p2mStrip();
  wellFormed(svg);
  assert.match(svg, /<text[^>]*>k \(kvm\)<\/text>/);
  assert.match(svg, /host kernel/);
  assert.match(svg, /gfn 1,024 · 1 run\(s\)/);
  assert.match(svg, /mfn 4,096 · /);
});
