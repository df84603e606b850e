#!/usr/bin/python3
"""Execute a Jupyter notebook with jupyter_client, without losing late outputs.

Usage:
    /usr/bin/python3 lib/tools/nbrun.py IN.ipynb OUT.ipynb \
        [--grace SECONDS] [--timeout SECONDS] [--kernel deno]

Why not nbclient / `jupyter nbconvert --execute`: Deno's kernel (>= 2.8.2)
can publish a cell's result on IOPub *after* it has reported
`status: idle`.  nbclient stops listening for a cell at `idle`, so that
output is silently lost (seen: one cell in a 30-cell notebook, in 2 runs
of 3).  This runner

* routes every IOPub message to its cell by `parent_header.msg_id`, so a
  message is never attached to the wrong cell, whenever it arrives;
* after a cell's `idle` (and its `execute_reply`) keeps draining IOPub
  for a grace period, restarted by every message for that cell that
  arrives in it;
* after the last cell, drains once more so late outputs of any cell are
  kept, and counts outputs that arrived late (after `idle`).

The kernel starts in the notebook's folder, so a notebook can import
`../mod.ts`.  Cells run top to bottom; execution stops at the first error.
The executed notebook (nbformat v4) is written to OUT even on error, and a
JSON summary is printed on stdout:

    {"notebook": ..., "ok": bool, "cells": [{"index", "execution_count",
     "mime", "output_types", "late_outputs", "error"}], "error": ...}

Exit status: 0 ok, 1 a cell failed (error output, timeout, dead kernel),
2 usage or start-up problem.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import sys
import time
from typing import Any

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*(\x07|\x1b\\)")


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


class CellState:
    """Outputs and bookkeeping for one executed code cell."""

    def __init__(self, index: int, cell: Any) -> None:
        self.index = index
        self.cell = cell
        self.outputs: list[dict[str, Any]] = []
        self.execution_count: int | None = None
        self.idle_at: float | None = None
        self.reply: dict[str, Any] | None = None
        self.last_msg_at: float = time.monotonic()
        self.late_outputs = 0
        self.max_late = 0.0  # seconds after idle of the latest late output
        self.clear_pending = False  # clear_output(wait=True) seen
        self.error: dict[str, Any] | None = None


class Runner:
    def __init__(self, kernel: str, cwd: str, grace: float, timeout: float,
                 startup_timeout: float, color: bool) -> None:
        from jupyter_client.manager import KernelManager

        self.grace = grace
        self.timeout = timeout
        self.km = KernelManager(kernel_name=kernel)
        env = dict(os.environ)
        if not color:
            # Deno's kernel renders a cell's plain value (`1 + 1`) as
            # text/plain with ANSI colour codes; NO_COLOR keeps stored
            # outputs and the HTML book free of escape codes.
            env["NO_COLOR"] = "1"
        self.km.start_kernel(cwd=cwd, env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except Exception:
            self.shutdown()
            raise
        self.by_msg_id: dict[str, CellState] = {}
        # display_id -> list of (CellState, output dict) for update_display_data
        self.displays: dict[str, list[dict[str, Any]]] = {}

    # -- output conversion -------------------------------------------------

    def _append(self, st: CellState, out: dict[str, Any]) -> None:
        if st.clear_pending:
            st.outputs.clear()
            st.clear_pending = False
        if out["output_type"] == "stream" and st.outputs:
            prev = st.outputs[-1]
            if prev["output_type"] == "stream" and prev["name"] == out["name"]:
                prev["text"] += out["text"]
                return
        st.outputs.append(out)

    def handle_iopub(self, msg: dict[str, Any]) -> None:
        parent = (msg.get("parent_header") or {}).get("msg_id")
        st = self.by_msg_id.get(parent) if parent else None
        if st is None:
            return  # not ours (e.g. kernel start-up status)
        mtype = msg["header"]["msg_type"]
        content = msg.get("content") or {}
        now = time.monotonic()
        if mtype == "status":
            if content.get("execution_state") == "idle":
                st.idle_at = now
            return
        if mtype == "execute_input":
            if content.get("execution_count") is not None:
                st.execution_count = content["execution_count"]
            return
        if mtype not in ("stream", "display_data", "execute_result", "error",
                         "update_display_data", "clear_output"):
            return  # comm_*, debug_event, ...
        st.last_msg_at = now
        if st.idle_at is not None:
            st.late_outputs += 1
            st.max_late = max(st.max_late, now - st.idle_at)
        if mtype == "stream":
            self._append(st, {"output_type": "stream",
                              "name": content.get("name", "stdout"),
                              "text": content.get("text", "")})
        elif mtype in ("display_data", "execute_result"):
            out: dict[str, Any] = {
                "output_type": mtype,
                "data": content.get("data") or {},
                "metadata": content.get("metadata") or {},
            }
            if mtype == "execute_result":
                count = content.get("execution_count", st.execution_count)
                out["execution_count"] = count
                if st.execution_count is None:
                    st.execution_count = count
            self._append(st, out)
            display_id = (content.get("transient") or {}).get("display_id")
            if display_id:
                self.displays.setdefault(display_id, []).append(out)
        elif mtype == "update_display_data":
            display_id = (content.get("transient") or {}).get("display_id")
            for out in self.displays.get(display_id or "", []):
                out["data"] = content.get("data") or {}
                out["metadata"] = content.get("metadata") or {}
        elif mtype == "clear_output":
            if content.get("wait"):
                st.clear_pending = True
            else:
                st.outputs.clear()
                st.clear_pending = False
        elif mtype == "error":
            out = {
                "output_type": "error",
                "ename": content.get("ename", "Error"),
                "evalue": content.get("evalue", ""),
                "traceback": list(content.get("traceback") or []),
            }
            self._append(st, out)
            if st.error is None:
                st.error = out

    def drain_iopub(self, wait: float) -> bool:
        """Handle IOPub messages for up to `wait` seconds; True if any came."""
        got = False
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self.kc.get_iopub_msg(timeout=max(left, 0.0) if not got else 0)
            except queue.Empty:
                if got or left <= 0:
                    return got
                continue
            self.handle_iopub(msg)
            got = True

    def drain_shell(self) -> None:
        while True:
            try:
                msg = self.kc.get_shell_msg(timeout=0)
            except queue.Empty:
                return
            parent = (msg.get("parent_header") or {}).get("msg_id")
            st = self.by_msg_id.get(parent) if parent else None
            if st is not None and msg["header"]["msg_type"] == "execute_reply":
                st.reply = msg.get("content") or {}
                if st.reply.get("execution_count") is not None:
                    st.execution_count = st.reply["execution_count"]

    # -- execution ---------------------------------------------------------

    def run_cell(self, index: int, cell: Any) -> CellState:
        st = CellState(index, cell)
        msg_id = self.kc.execute(cell.source, store_history=True,
                                 allow_stdin=False, stop_on_error=True)
        self.by_msg_id[msg_id] = st
        started = time.monotonic()
        while True:
            self.drain_iopub(0.05)
            self.drain_shell()
            now = time.monotonic()
            if st.idle_at is not None and st.reply is not None:
                # Grace period after idle, restarted by every late message.
                quiet_since = max(st.idle_at, st.last_msg_at)
                if now - quiet_since >= self.grace:
                    break
                continue
            if now - started > self.timeout:
                self.km.interrupt_kernel()
                self.drain_iopub(min(self.grace, 2.0))
                st.error = st.error or {
                    "output_type": "error", "ename": "CellTimeoutError",
                    "evalue": f"cell {index} did not finish in {self.timeout:g} s",
                    "traceback": []}
                self._append(st, dict(st.error))
                break
            if not self.km.is_alive():
                st.error = {"output_type": "error", "ename": "DeadKernelError",
                            "evalue": f"kernel died while running cell {index}",
                            "traceback": []}
                self._append(st, dict(st.error))
                break
        if st.error is None and st.reply is not None \
                and st.reply.get("status") == "error":
            # Reply says error but no error message came on IOPub.
            err = {"output_type": "error",
                   "ename": st.reply.get("ename", "Error"),
                   "evalue": st.reply.get("evalue", ""),
                   "traceback": list(st.reply.get("traceback") or [])}
            self._append(st, err)
            st.error = err
        return st

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        except Exception:
            pass
        try:
            self.km.shutdown_kernel(now=False)
        except Exception:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass


def mime_of(outputs: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for out in outputs:
        for key in (out.get("data") or {}):
            if key not in seen:
                seen.append(key)
    return seen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--grace", type=float, default=0.5,
                    help="seconds to keep draining IOPub after idle (0.5)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds per cell before it is interrupted (300)")
    ap.add_argument("--startup-timeout", type=float, default=60.0,
                    help="seconds to wait for the kernel to start (60)")
    ap.add_argument("--kernel", default="deno", help="kernel name (deno)")
    ap.add_argument("--color", action="store_true",
                    help="do not set NO_COLOR=1 for the kernel")
    args = ap.parse_args()

    import nbformat

    started = time.monotonic()
    in_path = os.path.abspath(args.input)
    out_path = os.path.abspath(args.output)
    nb = nbformat.read(in_path, as_version=4)
    summary: dict[str, Any] = {"notebook": in_path, "output": out_path,
                               "kernel": args.kernel, "ok": True,
                               "cells": [], "error": None}
    try:
        runner = Runner(args.kernel, os.path.dirname(in_path), args.grace,
                        args.timeout, args.startup_timeout, args.color)
    except Exception as exc:  # no such kernel, kernel did not start, ...
        summary["ok"] = False
        summary["error"] = {"cell": None, "ename": type(exc).__name__,
                            "evalue": str(exc), "traceback": []}
        print(json.dumps(summary, indent=1))
        return 2

    states: list[CellState] = []
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs = []
            cell.execution_count = None
            if not cell.source.strip():
                continue
            st = runner.run_cell(index, cell)
            states.append(st)
            if st.error is not None:
                break
        # Late outputs of any cell: one last drain.
        while runner.drain_iopub(args.grace):
            pass
    finally:
        runner.shutdown()

    for st in states:
        st.cell.outputs = [nbformat.from_dict(o) for o in st.outputs]
        st.cell.execution_count = st.execution_count
        error = None
        if st.error is not None:
            error = {"ename": st.error.get("ename", ""),
                     "evalue": strip_ansi(str(st.error.get("evalue", ""))),
                     "traceback": [strip_ansi(t) for t in
                                   st.error.get("traceback", [])]}
            summary["ok"] = False
            if summary["error"] is None:
                summary["error"] = {"cell": st.index, **error}
        summary["cells"].append({
            "index": st.index,
            "execution_count": st.execution_count,
            "mime": mime_of(st.outputs),
            "output_types": [o["output_type"] for o in st.outputs],
            "late_outputs": st.late_outputs,
            "max_late_ms": round(st.max_late * 1000),
            "error": error,
        })
    summary["executed"] = len(states)
    summary["code_cells"] = sum(1 for c in nb.cells if c.cell_type == "code")
    summary["seconds"] = round(time.monotonic() - started, 2)

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        summary["validation"] = str(exc).splitlines()[0]
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    nbformat.write(nb, out_path)
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
