// Guests on a hypervisor: the reference scheme (guest walk, then P2M) and
// shadow paging on the same guest workloads.
//   deno bench -A tests/bench/virt_bench.ts
import {
  ACCESS_USER,
  ACCESS_WRITE,
  GuestAccessState,
  GuestOs,
  Host,
  type MmuScheme,
  Random,
  ShadowScheme,
} from "../../mod.ts";

const MiB = 2 ** 20;

type Make = () => MmuScheme | undefined;
const schemes: [string, Make][] = [
  ["reference", () => undefined],
  ["shadow", () => new ShadowScheme()],
  ["shadow+OOS", () => new ShadowScheme({ outOfSync: 4 })],
];

function guest(make: Make, hypervisor: "xen" | "kvm" = "xen") {
  const host = new Host({ memory: 256 * MiB, hypervisor, seed: 1 });
  const vm = host.createDomain({ memory: 64 * MiB });
  const scheme = make();
  return new GuestOs(vm, scheme ? { scheme } : {});
}

// 1. fork/exec-like churn: a parent with 64 touched pages forks; the child
//    writes 8 of them (copy-on-write) and exits.
for (const [name, make] of schemes) {
  const os = guest(make);
  const parent = os.spawn("parent");
  os.switchTo(parent.pid);
  const base = os.mmap({ length: 64 * 4096 });
  for (let i = 0; i < 64; i++) {
    os.access(base + i * 4096, { kind: "write", value: i });
  }
  Deno.bench({
    name: `${name}: fork + 8 COW writes + exit (64-page parent)`,
    group: "fork",
    fn() {
      const child = os.fork(parent.pid);
      os.switchTo(child.pid);
      for (let i = 0; i < 8; i++) {
        os.access(base + i * 8 * 4096, { kind: "write", value: 1 });
      }
      os.exit(child.pid);
      os.switchTo(parent.pid);
    },
  });
}

// 2. A large working set: 8,192 touched pages (32 MiB), 1,024 random user
//    reads per iteration through the scheme's allocation-free access path.
for (const [name, make] of schemes) {
  const os = guest(make);
  const p = os.spawn("ws");
  os.switchTo(p.pid);
  const pages = 8192;
  const base = os.mmap({ length: pages * 4096 });
  for (let i = 0; i < pages; i++) {
    os.access(base + i * 4096, { kind: "write", value: i });
  }
  const rng = new Random(7);
  const los = new Uint32Array(1024), his = new Uint32Array(1024);
  for (let i = 0; i < 1024; i++) {
    const va = base + rng.int(pages) * 4096 + 4 * rng.int(1024);
    his[i] = Math.floor(va / 2 ** 32);
    los[i] = va >>> 0;
  }
  const s = new GuestAccessState();
  const scheme = os.scheme;
  Deno.bench({
    name: `${name}: 1,024 random reads over 8,192 pages`,
    group: "working set",
    fn() {
      for (let i = 0; i < 1024; i++) {
        scheme.accessFast(s, his[i], los[i], ACCESS_USER, 4, 0);
      }
    },
  });
  Deno.bench({
    name: `${name}: 1,024 random writes over 8,192 pages`,
    group: "working set",
    fn() {
      for (let i = 0; i < 1024; i++) {
        scheme.accessFast(s, his[i], los[i], ACCESS_USER | ACCESS_WRITE, 4, i);
      }
    },
  });
}
