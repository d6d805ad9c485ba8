"""The server's CPU per ticket, thread by thread, under kiosk load (and optionally a py-spy profile).

    .venv/bin/python bench/server_threads.py --inflight 16 --seconds 6 --rounds 3
    .venv/bin/python bench/server_threads.py --before /tmp/before --inflight 16,64 --rounds 3
    .venv/bin/python bench/server_threads.py --inflight 16 --pyspy /tmp/prof.svg   # a flame graph

Why: on a shared machine tickets/s and latencies say more about the neighbours than about the
code, while CPU time per ticket does not depend on how long the process waited for a core.
Each thread's user+system time is read from ``/proc/<pid>/task/<tid>/stat`` before and after a
load (bench/kiosk_load.py, the same as bench/server_bench.py's cells) and divided by the
tickets issued. ``--before DIR`` runs an older server's code (a ``git archive``) in the same
rounds, interleaved, so both see the same neighbours.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server_bench import HERE, Office, load  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def names(pid: int) -> dict[str, str]:
    """Native thread id -> Python thread name, from ``py-spy dump`` (Python does not name OS threads)."""
    exe = Path(sys.executable).parent / "py-spy"
    text = subprocess.run([str(exe), "dump", "-p", str(pid)], capture_output=True, text=True, timeout=60).stdout
    found = dict(re.findall(r'Thread (\d+) \(\w+\): "([^"]*)"', text))
    return {tid: ("paho-network" if n.startswith("paho-mqtt-client") else n) for tid, n in found.items()}


def threads(pid: int, named: dict[str, str]) -> dict[str, float]:
    """CPU seconds per thread name (threads of one name summed; unnamed ones as "other")."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = named.get(task.name, "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def one(code: Path | None, folder: Path, inflight: int, seconds: float, waiting: int, pyspy: str | None) -> dict:
    office = Office(folder, False, 100, code)
    try:
        if waiting:
            load(office.port, 64, 0, office.folder, count=waiting)
        pid = office.server.proc.pid
        named = names(pid)
        spy = None
        if pyspy:
            exe = Path(sys.executable).parent / "py-spy"
            cmd = [
                str(exe),
                "record",
                "-r",
                "250",
                "--threads",
                *(["--gil"] if os.environ.get("PYSPY_GIL") else []),
                "-p",
                str(pid),
                "-o",
                pyspy,
            ]
            cmd += ["-d", str(int(seconds) + 1)] + (["-f", "speedscope"] if pyspy.endswith(".json") else [])
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = threads(pid, named)
        result = load(office.port, inflight, seconds, office.folder)
        after = threads(pid, named)
        if spy is not None:
            spy.wait(60)
    finally:
        office.close()
    n = len(result["lat"])
    per = {k: 1000 * (after.get(k, 0.0) - before.get(k, 0.0)) / n for k in after}
    return {"tickets": n, "rate": result["rate"], "per": per, "client": 1000 * result["client_cpu"] / result["rate"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inflight", default="16")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--waiting", type=int, default=0)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--pyspy", help="write a py-spy profile of the last round here (.svg or .json)")
    args = ap.parse_args()
    codes = [("after", args.after)] + ([("before", args.before)] if args.before else [])
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.1f}", flush=True)
    got: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        for r in range(args.rounds):
            for inflight in [int(x) for x in args.inflight.split(",")]:
                for label, code in codes:
                    spy = args.pyspy if args.pyspy and r == args.rounds - 1 and label == "after" else None
                    res = one(code, Path(tmp) / f"{label}-{r}-{inflight}", inflight, args.seconds, args.waiting, spy)
                    got.setdefault((label, inflight), []).append(res)
                    total = sum(res["per"].values())
                    print(
                        f"round {r + 1} {label:6} in flight {inflight:>2}: {res['rate']:6.0f} tickets/s, "
                        f"server {total:.3f} ms/ticket",
                        flush=True,
                    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}\n")
    names = sorted({k for v in got.values() for r in v for k in r["per"]})
    print("| code | in flight | tickets/s | server ms/ticket | " + " | ".join(names) + " | load clients ms/ticket |")
    print("|---|---:|---:|---:|" + "---:|" * (len(names) + 1))
    for (label, inflight), rs in sorted(got.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = [statistics.median(r["per"].get(n, 0.0) for r in rs) for n in names]
        total = statistics.median(sum(r["per"].values()) for r in rs)
        rate = statistics.median(r["rate"] for r in rs)
        client = statistics.median(r["client"] for r in rs)
        print(
            f"| {label} | {inflight} | {rate:,.0f} | {total:.3f} | "
            + " | ".join(f"{c:.3f}" for c in cells)
            + f" | {client:.3f} |"
        )


if __name__ == "__main__":
    main()
