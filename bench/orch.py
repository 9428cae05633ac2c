#!/usr/bin/env python3
"""Side-by-side benchmark orchestrator behind `cargo xtask bench` (Trellis, the official Rust
SDK, the Python SDK sandboxed and unsandboxed).

xtask installs the tools and builds the peers, then runs this script with:
  TEMPORAL_BIN  the `temporal` CLI            PEER_PY       a Python with `temporalio`
  TRELLIS_BIN   dir of trellis-peer-* + trellis-bench (release)
  OFFICIAL_BIN  dir of the official peer's peer-* binaries (release)
  PEERS_DIR     bench/peers (python/ scripts)

Per round, every peer runs (order rotated each round, so drifting load hits all alike):
  A  end to end: a FRESH in-memory dev server per run; the peer's worker and its own client;
     `--warmup` workflows, then N EchoWorkflows with at most `--conc` in flight. CPU time of
     server / worker / client / whole machine from /proc over the timed window; the worker's
     peak RSS (VmHWM) just before it is stopped.
  B  replay of the histories recorded once at the start (by the Python worker and by the
     Trellis worker, one fresh server): each peer's replay program, 1 warm-up pass + reps.
  C  converter round trip of a 1 KiB struct (+ serde_json / json floor).
Then D (Trellis only, in process): `trellis-bench --only layers`.
Raw results go to <out>/results.jsonl; the markdown report to <out>/report.md (and stdout).
"""
import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics as st
import subprocess
import sys
import time
import uuid

TEMPORAL = os.environ.get("TEMPORAL_BIN", "temporal")
PY = os.environ.get("PEER_PY", "python3")
TRELLIS_BIN = os.environ.get("TRELLIS_BIN", "")
OFFICIAL_BIN = os.environ.get("OFFICIAL_BIN", "")
PEERS_DIR = os.environ.get("PEERS_DIR", os.path.join(os.path.dirname(__file__), "peers"))
PYDIR = os.path.join(PEERS_DIR, "python")
CLK = os.sysconf("SC_CLK_TCK")
ALL_PEERS = ["trellis", "rust-official", "python", "python-unsandboxed"]


def worker_cmd(peer):
    return {
        "trellis": [f"{TRELLIS_BIN}/trellis-peer-worker"],
        "rust-official": [f"{OFFICIAL_BIN}/peer-worker"],
        "python": [PY, "worker.py"],
        "python-unsandboxed": [PY, "worker.py", "--unsandboxed"],
    }[peer]


def client_cmd(peer):
    return {
        "trellis": [f"{TRELLIS_BIN}/trellis-peer-client"],
        "rust-official": [f"{OFFICIAL_BIN}/peer-client"],
        "python": [PY, "client.py"],
        "python-unsandboxed": [PY, "client.py"],
    }[peer]


def replay_cmd(peer):
    return {
        "trellis": [f"{TRELLIS_BIN}/trellis-peer-replay"],
        "rust-official": [f"{OFFICIAL_BIN}/peer-replay"],
        "python": [PY, "replay.py"],
        "python-unsandboxed": [PY, "replay.py", "--unsandboxed"],
    }[peer]


# ---------------------------------------------------------------- /proc sampling

def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in parts[11:15]) / CLK  # utime stime cutime cstime
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")


def tree_pids(pid):
    out = [pid]
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                for c in f.read().split():
                    out += tree_pids(int(c))
    except FileNotFoundError:
        pass
    return out


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


# ---------------------------------------------------------------- dev server

def free_port():
    # Three consecutive free ports: gRPC, UI/HTTP, metrics.
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p < 60000:
            ok = True
            for q in (p + 1, p + 2):
                t = socket.socket()
                try:
                    t.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
                t.close()
            if ok:
                return p


def start_server(logdir):
    port = free_port()
    srv = subprocess.Popen(
        [TEMPORAL, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--http-port", str(port + 1), "--metrics-port", str(port + 2), "--log-level", "error"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(logdir, f"server-{port}.log"), "w"))
    deadline = time.time() + 60
    while time.time() < deadline:
        r = subprocess.run([TEMPORAL, "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"],
                           capture_output=True, text=True)
        if r.returncode == 0 and "SERVING" in r.stdout:
            return srv, f"127.0.0.1:{port}"
        if srv.poll() is not None:
            break
        time.sleep(0.3)
    stop(srv)
    raise RuntimeError("the dev server did not become healthy")


def stop(p, sig=signal.SIGTERM, timeout=20):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- A: end to end

def run_a(peer, n, a, logdir):
    srv, addr = start_server(logdir)
    tq = f"bench-{peer}-{uuid.uuid4().hex[:8]}"
    res = {"kind": "A", "peer": peer, "n": n, "conc": a.conc, "loadavg_before": loadavg()}
    w = subprocess.Popen(worker_cmd(peer) + ["--addr", addr, "--tq", tq], stdout=subprocess.PIPE,
                         stderr=open(os.path.join(logdir, f"{tq}.worker.err"), "w"), text=True, cwd=PYDIR)
    try:
        line = w.stdout.readline()
        if "READY" not in line:
            raise RuntimeError(f"{peer} worker failed ({line!r}); see {logdir}/{tq}.worker.err")
        c = subprocess.Popen(client_cmd(peer) + ["--addr", addr, "--tq", tq, "-n", str(n), "--conc", str(a.conc),
                                                 "--warmup", str(a.warmup)],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(logdir, f"{tq}.client.err"), "w"),
                             text=True, cwd=PYDIR)

        def snap():
            return (time.perf_counter(), proc_cpu_s(srv.pid), sum(proc_cpu_s(p) for p in tree_pids(w.pid)),
                    proc_cpu_s(c.pid), machine_busy_s())

        s0 = s1 = None
        for line in c.stdout:
            if line.startswith("MEASURE_START"):
                s0 = snap()
            elif line.startswith("{"):
                s1 = snap()
                res.update(json.loads(line))
        c.wait()
        if s0 is None or s1 is None:
            raise RuntimeError(f"{peer} client failed rc={c.returncode}; see {logdir}/{tq}.client.err")
        win = s1[0] - s0[0]
        res["window_s"] = win
        for i, k in ((1, "server"), (2, "worker"), (3, "client")):
            res[f"{k}_cpu_s"] = s1[i] - s0[i]
        res["machine_busy_cpu_s"] = s1[4] - s0[4]
        res["other_cpu_s"] = res["machine_busy_cpu_s"] - res["server_cpu_s"] - res["worker_cpu_s"] - res["client_cpu_s"]
        res["worker_cpu_us_per_wf"] = 1e6 * res["worker_cpu_s"] / n
        res["server_cpu_us_per_wf"] = 1e6 * res["server_cpu_s"] / n
        res["worker_peak_rss_kb"] = max(vm_hwm_kb(p) for p in tree_pids(w.pid))
    finally:
        stop(w)
        stop(srv)
    return res


# ---------------------------------------------------------------- B: record + replay

def record(out, a, logdir):
    srv, addr = start_server(logdir)
    try:
        args = ["--addr", addr, "--echo", str(a.rec_echo), "--loops", str(a.rec_loops), "--loop-len", str(a.loop_len)]
        print("recording histories with the Python worker…", flush=True)
        subprocess.run([PY, "record.py", "--out", os.path.join(out, "py")] + args, cwd=PYDIR, check=True)
        print("recording histories with the Trellis worker…", flush=True)
        subprocess.run([f"{TRELLIS_BIN}/trellis-peer-record", "--out", os.path.join(out, "trellis")] + args, check=True)
    finally:
        stop(srv)


def run_b(peer, hset, kind, hdir, a):
    reps = a.replay_reps if kind == "echo" or not peer.startswith("python") else a.replay_reps_python_long
    d = os.path.join(hdir, hset, kind)
    r = subprocess.run(replay_cmd(peer) + ["--dir", d, "--label", f"{hset}/{kind}", "--reps", str(reps),
                                           "--warmup", "1"], capture_output=True, text=True, cwd=PYDIR)
    line = next((l for l in r.stdout.splitlines() if l.startswith("{")), None)
    if r.returncode != 0 or line is None:
        return {"kind": "B", "peer": peer, "set": hset, "workload": kind, "error": (r.stderr or r.stdout)[-600:]}
    res = json.loads(line)
    res.update({"kind": "B", "peer": peer, "set": hset, "workload": kind})
    return res


# ---------------------------------------------------------------- C: converter

def run_c(peer, a):
    i = a.convert_iters
    if peer == "trellis":
        cmd = [f"{TRELLIS_BIN}/trellis-peer-convert", "--iters", str(i), "--reps", str(a.convert_reps)]
    elif peer == "rust-official":
        cmd = [f"{OFFICIAL_BIN}/peer-convert", "--iters", str(i), "--iters-secondary", str(i), "--reps",
               str(a.convert_reps)]
    else:  # Python's typed path costs ~0.75 ms: fewer iterations, one rep per process.
        pi = max(200, i // 50)
        cmd = [PY, "convert.py", "--iters", str(pi), "--iters-secondary", str(pi), "--reps", "1", "--warmup", "200"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=PYDIR)
    line = next((l for l in r.stdout.splitlines() if l.startswith("{")), None)
    if r.returncode != 0 or line is None:
        return {"kind": "C", "peer": peer, "error": (r.stderr or r.stdout)[-600:]}
    res = json.loads(line)
    res.update({"kind": "C", "peer": peer})
    return res


# ---------------------------------------------------------------- report

def mmm(xs, fmt="{:.1f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{fmt.format(st.median(xs))} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"


def same_round(rows, key, fn, num="trellis", den="rust-official"):
    """Per round, fn(row_num) / fn(row_den) for rows matching key; list of ratios."""
    by = {}
    for r in rows:
        if key(r):
            by.setdefault(r["round"], {})[r["peer"]] = r
    return [fn(d[num]) / fn(d[den]) for d in by.values() if num in d and den in d and fn(d[den])]


def report(rows, a, meta, layers_md):
    out = ["# `cargo xtask bench` report", "",
           f"- command: `{meta['command']}`",
           f"- date: {meta['date']}; machine: {meta['machine']}",
           f"- load average before / after: {meta['load_before']} / {meta['load_after']} "
           "(other builds may share this machine: see the `other CPU` column)",
           f"- peers: {', '.join(a.peers)}; rounds: {a.rounds}; order rotated each round",
           "- every A run on a fresh in-memory dev server; median [min–max] over runs; ratios are "
           "per round (peers ran back to back), then median [min–max] over rounds", ""]
    peers = [p for p in ALL_PEERS if p in a.peers]
    others = [p for p in peers if p != "trellis"]
    A = [r for r in rows if r["kind"] == "A" and "error" not in r]
    out += ["## A. End to end: EchoWorkflow (activity `echo`), ≤%d in flight, %d warm-up" % (a.conc, a.warmup), "",
            "| N | peer | runs | workflows/s | worker CPU ms/wf | worker peak RSS MiB | server CPU ms/wf | other (non-bench) CPU % |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n in a.ns:
        for p in peers:
            rs = [r for r in A if r["n"] == n and r["peer"] == p]
            if rs:
                out.append(f"| {n} | {p} | {len(rs)} | {mmm([r['wf_per_s'] for r in rs])} | "
                           f"{mmm([r['worker_cpu_us_per_wf'] / 1000 for r in rs], '{:.2f}')} | "
                           f"{mmm([r['worker_peak_rss_kb'] / 1024 for r in rs])} | "
                           f"{mmm([r['server_cpu_us_per_wf'] / 1000 for r in rs], '{:.1f}')} | "
                           f"{mmm([100 * r['other_cpu_s'] / r['window_s'] for r in rs], '{:.0f}')} |")
    out += ["", "Same-round ratios, Trellis ÷ peer (CPU and RSS: < 1 = Trellis cheaper; wf/s: > 1 = Trellis faster):", "",
            "| N | peer | workflows/s | worker CPU per workflow | worker peak RSS |", "| --- | --- | --- | --- | --- |"]
    for n in a.ns:
        for p in others:
            k = lambda r, n=n: r["n"] == n
            out.append(f"| {n} | {p} | {mmm(same_round(A, k, lambda r: r['wf_per_s'], den=p), '{:.2f}')} | "
                       f"{mmm(same_round(A, k, lambda r: r['worker_cpu_us_per_wf'], den=p), '{:.2f}')} | "
                       f"{mmm(same_round(A, k, lambda r: r['worker_peak_rss_kb'], den=p), '{:.2f}')} |")
    B = [r for r in rows if r["kind"] == "B" and "error" not in r]
    out += ["", "## B. Replay of recorded histories (1 warm-up pass, then timed passes over the whole set)", "",
            "| recorded by / workload | peer | histories × events | histories/s | CPU ms per history | replay peak RSS MiB |",
            "| --- | --- | --- | --- | --- | --- |"]
    sets = sorted({(r["set"], r["workload"]) for r in rows if r["kind"] == "B"})
    for hs, wl in sets:
        for p in peers:
            rs = [r for r in B if r["set"] == hs and r["workload"] == wl and r["peer"] == p]
            if rs:
                hps = [r["histories"] / t for r in rs for t in r["times_s"]]
                cpm = [1000 * c / r["histories"] for r in rs for c in r["cpu_s"]]
                out.append(f"| {hs}/{wl} | {p} | {rs[0]['histories']} × {rs[0]['events'] // rs[0]['histories']} | "
                           f"{mmm(hps)} | {mmm(cpm, '{:.2f}')} | {mmm([r['maxrss_kb'] / 1024 for r in rs])} |")
    out += ["", "Same-round ratios, Trellis ÷ peer:", "",
            "| recorded by / workload | peer | histories/s (> 1 = Trellis faster) | replay peak RSS (< 1 = Trellis smaller) |",
            "| --- | --- | --- | --- |"]
    for hs, wl in sets:
        for p in others:
            k = lambda r, hs=hs, wl=wl: r["set"] == hs and r["workload"] == wl
            out.append(f"| {hs}/{wl} | {p} | {mmm(same_round(B, k, lambda r: r['hist_per_s_median'], den=p), '{:.2f}')} | "
                       f"{mmm(same_round(B, k, lambda r: r['maxrss_kb'], den=p), '{:.2f}')} |")
    errs = [r for r in rows if "error" in r]
    C = [r for r in rows if r["kind"] == "C" and "error" not in r]
    out += ["", "## C. Data converter: 1 KiB struct, encode + decode (ns per round trip)", "",
            "| peer | SDK default converter | plain serde_json / json (same process) | converter ÷ serde_json |",
            "| --- | --- | --- | --- |"]
    for p in [p for p in peers if p != "python-unsandboxed"]:
        rs = [r for r in C if r["peer"] == p]
        if rs:
            out.append(f"| {p} | {mmm([x for r in rs for x in r['dc_ns']], '{:,.0f}')} | "
                       f"{mmm([x for r in rs for x in r['raw_ns']], '{:,.0f}')} | "
                       f"{mmm([r['dc_ns_median'] / r['raw_ns_median'] for r in rs], '{:.2f}')} |")
    out += ["", "Same-round ratios, Trellis converter ÷ peer converter: " + "; ".join(
        f"{p} {mmm(same_round(C, lambda r: True, lambda r: r['dc_ns_median'], den=p), '{:.3f}')}"
        for p in ["rust-official", "python"] if p in peers), ""]
    out += ["## D. Plugin layers on the activity call (Trellis, in process)", "",
            layers_md.strip().replace("\n## ", "\n### ").replace("## ", "### ", 1), ""]
    out += ["## Issue 9 targets", "", "| target | measured (median over rounds) | met? |", "| --- | --- | --- |"]

    def target(name, vals, ok):
        if not vals:
            out.append(f"| {name} | not measured | – |")
        else:
            m = st.median(vals)
            out.append(f"| {name} | {m:.2f} [{min(vals):.2f}–{max(vals):.2f}] | {'yes' if ok(m) else '**no**'} |")

    nmax = max(a.ns)
    target(f"worker CPU/workflow ≤ 0.8× official Rust (N={nmax})",
           same_round(A, lambda r: r["n"] == nmax, lambda r: r["worker_cpu_us_per_wf"]), lambda m: m <= 0.8)
    target(f"worker peak RSS ≤ 1.0× official Rust (N={nmax})",
           same_round(A, lambda r: r["n"] == nmax, lambda r: r["worker_peak_rss_kb"]), lambda m: m <= 1.0)
    for wl in ("loop_act", "loop_timer"):
        target(f"replay histories/s ≥ 1.0× official Rust (py/{wl})",
               same_round(B, lambda r, wl=wl: r["set"] == "py" and r["workload"] == wl, lambda r: r["hist_per_s_median"]),
               lambda m: m >= 1.0)
        target(f"replay peak RSS ≤ 0.3× official Rust (py/{wl})",
               same_round(B, lambda r, wl=wl: r["set"] == "py" and r["workload"] == wl, lambda r: r["maxrss_kb"]),
               lambda m: m <= 0.3)
    target("converter ≤ 1.5× serde_json (Trellis, same process)",
           [r["dc_ns_median"] / r["raw_ns_median"] for r in C if r["peer"] == "trellis"], lambda m: m <= 1.5)
    m16 = re.findall(r"^\| 16 \| [^|]+\| (-?\d+) \|", layers_md.split("## Plugins")[-1], re.M)
    target("16 plugin layers add < 2 µs per activity call (µs)", [int(x) / 1000 for x in m16], lambda m: m < 2.0)
    if errs:
        out += ["", "## Errors", ""] + [f"- {r['kind']} {r['peer']} {r.get('set', '')}/{r.get('workload', '')}: "
                                        f"`{r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}`"
                                        for r in errs]
    return "\n".join(out) + "\n"


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} × {model}, {mem} MiB RAM, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ns", default="500,2000")
    ap.add_argument("--conc", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rec-echo", type=int, default=200)
    ap.add_argument("--rec-loops", type=int, default=50)
    ap.add_argument("--loop-len", type=int, default=100)
    ap.add_argument("--replay-reps", type=int, default=3)
    ap.add_argument("--replay-reps-python-long", type=int, default=1)
    ap.add_argument("--convert-iters", type=int, default=100_000)
    ap.add_argument("--convert-reps", type=int, default=3)
    ap.add_argument("--layers-rounds", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: A,B,C,D")
    ap.add_argument("--command", default="cargo xtask bench")
    a = ap.parse_args()
    a.peers = a.peers.split(",")
    a.ns = [int(x) for x in a.ns.split(",")]
    skip = set(a.skip.split(",")) if a.skip else set()
    os.makedirs(a.out, exist_ok=True)
    logdir = os.path.join(a.out, "logs")
    os.makedirs(logdir, exist_ok=True)
    results = os.path.join(a.out, "results.jsonl")
    open(results, "w").close()
    meta = {"command": a.command, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
            "load_before": " ".join(loadavg())}
    rows = []

    def keep(r, rnd):
        r["round"] = rnd
        rows.append(r)
        with open(results, "a") as f:
            f.write(json.dumps(r) + "\n")
        brief = {k: r[k] for k in ("kind", "peer", "n", "set", "workload", "wf_per_s", "worker_cpu_us_per_wf",
                                   "worker_peak_rss_kb", "hist_per_s_median", "maxrss_kb", "dc_ns_median",
                                   "raw_ns_median", "error") if k in r}
        print(json.dumps(brief)[:400], flush=True)

    hdir = os.path.join(a.out, "histories")
    if "B" not in skip:
        record(hdir, a, logdir)
    for rnd in range(a.rounds):
        order = a.peers[rnd % len(a.peers):] + a.peers[:rnd % len(a.peers)]
        print(f"== round {rnd + 1}/{a.rounds}: {', '.join(order)}", flush=True)
        if "A" not in skip:
            for n in a.ns:
                for p in order:
                    try:
                        keep(run_a(p, n, a, logdir), rnd)
                    except Exception as e:  # one failed run must not lose the others
                        keep({"kind": "A", "peer": p, "n": n, "error": str(e)}, rnd)
        if "B" not in skip:
            for hs in ("py", "trellis"):
                for wl in ("echo", "loop_act", "loop_timer"):
                    for p in order:
                        keep(run_b(p, hs, wl, hdir, a), rnd)
        if "C" not in skip:
            for p in order:
                if p != "python-unsandboxed":
                    keep(run_c(p, a), rnd)
    layers_md = "(skipped)"
    if "D" not in skip and "trellis" in a.peers:
        r = subprocess.run([f"{TRELLIS_BIN}/trellis-bench", "--only", "layers", "--rounds", str(a.layers_rounds)],
                           capture_output=True, text=True)
        layers_md = r.stdout if r.returncode == 0 else f"(failed: {r.stderr[-400:]})"
    meta["load_after"] = " ".join(loadavg())
    md = report(rows, a, meta, layers_md)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
