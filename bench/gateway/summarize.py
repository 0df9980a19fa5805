#!/usr/bin/env python3
"""Turns run.sh's raw results into the Markdown report (medians over the rounds).

Usage: summarize.py META RESULTS.tsv PERFSTAT.tsv OUT_DIR
"""
import csv
import os
import statistics
import sys

meta_path, results_path, perf_path, out_dir = sys.argv[1:5]
meta = {}
with open(meta_path) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v

rows = [r for r in csv.DictReader(open(results_path), delimiter="\t")
        if r["round"] not in ("0", "perf", "profile")]
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def sel(case, target):
    return [r for r in rows if r["case"] == case and r["target"] == target]


def med(case, target, key):
    v = [float(r[key]) for r in sel(case, target)]
    return statistics.median(v) if v else None


def cpu_us(case, target):
    v = [int(r["cpu_ticks"]) * TICK_US / int(r["requests"]) for r in sel(case, target)]
    return statistics.median(v) if v else None


def sleeps(case, target):
    v = [int(r["backend_sleeps"]) * 100 / int(r["requests"]) for r in sel(case, target)
         if r.get("backend_sleeps")]
    return f"{statistics.median(v):.1f}" if v else "-"


def k(x):
    return "-" if x is None else f"{x / 1000:.1f} k"


def ms(x):
    return "-" if x is None else f"{x:.2f} ms"


CASES = [("http", "HTTP keep-alive, req/s"),
         ("https", "HTTPS keep-alive (TLS 1.3), req/s"),
         ("handshake", "TLS handshakes/s (`Connection: close`)")]
NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "baton": "Baton", "backend": "backend"}

out = []
p = out.append
n_rounds = len({r["round"] for r in rows})
def paired(case):
    """Per round: Baton's req/s over the better of nginx and HAProxy in that same round."""
    by_round = {}
    for r in rows:
        if r["case"] == case:
            by_round.setdefault(r["round"], {})[r["target"]] = float(r["rps"])
    ratios = [v["baton"] / max(v["nginx"], v["haproxy"]) for v in by_round.values()
              if {"baton", "nginx", "haproxy"} <= v.keys()]
    return ratios


p(f"Medians of {n_rounds} interleaved rounds; {meta.get('setup', '')}.")
p("")
p("The ratio is paired: in every round, Baton's req/s over the better of nginx and HAProxy "
  "in that round (the three runs of a round are seconds apart, so the host's drift cancels); "
  "the median over the rounds, with its range. The ratio of the medians is shown beside it.")
p("")
p("| case | nginx | HAProxy | Baton | Baton / best, paired (range) | ratio of medians "
  "| p99 nginx | p99 HAProxy | p99 Baton | bar |")
p("|---|---|---|---|---|---|---|---|---|---|")
verdicts = []
for case, title in CASES:
    rps = {t: med(case, t, "rps") for t in ("nginx", "haproxy", "baton")}
    p99 = {t: med(case, t, "p99_ms") for t in ("nginx", "haproxy", "baton")}
    if None in rps.values():
        continue
    best = max(("nginx", "haproxy"), key=lambda t: rps[t])
    pr = paired(case)
    ratio = statistics.median(pr)
    of_medians = rps["baton"] / rps[best]
    p99_ok = p99["baton"] <= p99[best]
    ok = ratio >= 1.0 and p99_ok
    verdict = ("meets (≥ 1.1× goal)" if ok and ratio >= 1.1 else "meets" if ok else
               "misses: " + ", ".join(x for x in (
                   f"{ratio:.2f}× < 1.0×" if ratio < 1.0 else "",
                   f"p99 {p99['baton']:.2f} > {p99[best]:.2f} ms ({NAMES[best]})"
                   if not p99_ok else "") if x))
    verdicts.append((title, verdict))
    p(f"| {title} | {k(rps['nginx'])} | {k(rps['haproxy'])} | {k(rps['baton'])} | "
      f"**{ratio:.2f}×** ({min(pr):.2f}-{max(pr):.2f}) | {of_medians:.2f}× ({NAMES[best]}) | "
      f"{ms(p99['nginx'])} | {ms(p99['haproxy'])} | {ms(p99['baton'])} | {verdict} |")
plain = med("http", "nginx", "rps")


def against_plain(case, title, bar):
    """A Baton-only case as a ratio of nginx's plain HTTP figure; `bar` None: no bar."""
    v = med(case, "baton", "rps")
    if v is None or plain is None:
        return
    r = v / plain
    if bar is None:
        ratio, verdict = f"{r:.2f}×", "(no bar)"
    else:
        ratio = f"**{r:.2f}×**"
        verdict = f"≥ {bar}×: " + ("meets" if r >= bar else f"misses: {r:.2f}× < {bar}×")
        verdicts.append((case, verdict))
    p(f"| {title} | {k(plain)} (plain) | - | {k(v)} | {ratio} of nginx plain | | "
      f"{ms(med('http', 'nginx', 'p99_ms'))} (plain) | - | {ms(med(case, 'baton', 'p99_ms'))} | "
      f"{verdict} |")


against_plain("jwt", "HTTP keep-alive + ES256 JWT verified per request, req/s", 0.9)
against_plain("apikey", "HTTP keep-alive + API key checked per request, req/s", None)
be = med("http", "backend", "rps")
if be is not None:
    p(f"| reference: wrk → backend directly, HTTP keep-alive | {k(be)} | | | | | "
      f"{ms(med('http', 'backend', 'p99_ms'))} | | | |")
p("")
p("Bars (issue 3): ≥ 1.0× the better of nginx and HAProxy in req/s with p99 no worse (goal "
  "≥ 1.1×); with JWT ≥ 0.9× of nginx's plain HTTP figure.")
p("")
p("### Per target (medians; min-max of req/s over the rounds)")
p("")
p("| case | target | req/s | min-max | p50 | p99 | CPU per request (target's processes) | "
  "of it kernel | core 0 busy | core 1 busy | backend sleeps per 100 requests |")
p("|---|---|---|---|---|---|---|---|---|---|---|")
for case, _ in CASES + [("jwt", ""), ("apikey", "")]:
    for t in ("backend", "nginx", "haproxy", "baton"):
        s = sel(case, t)
        if not s:
            continue
        v = [float(r["rps"]) for r in s]
        sys_share = statistics.median(
            [int(r["sys_ticks"]) / max(1, int(r["cpu_ticks"])) for r in s]) * 100
        p(f"| {case} | {NAMES[t]} | {k(statistics.median(v))} | {k(min(v))}-{k(max(v))} | "
          f"{ms(med(case, t, 'p50_ms'))} | {ms(med(case, t, 'p99_ms'))} | "
          f"{cpu_us(case, t):.1f} µs | {sys_share:.0f}% | {med(case, t, 'core0_busy'):.0f}% | "
          f"{med(case, t, 'core1_busy'):.0f}% | {sleeps(case, t)} |")
p("")
p("CPU per request: user+system time of the target's processes (/proc/PID/stat; for Baton the "
  "whole agent process, idle threads included) divided by the requests wrk completed. Core 0 "
  "holds the proxy under test, core 1 wrk and the backend; when both are ~100% busy, either "
  "can limit the rate. Backend sleeps: voluntary context switches of the backend nginx worker "
  "(it blocked with no request to serve) per 100 requests; every sleep is a wake-up later, "
  "which preempts wrk on the same core.")

if os.path.exists(perf_path) and os.path.getsize(perf_path) > 0:
    p("")
    p("### perf stat (one extra run per target)")
    p("")
    p("| case | target | requests | task-clock per request | context switches per request | "
      "page faults per request |")
    p("|---|---|---|---|---|---|")
    for line in open(perf_path):
        c, t, n, tc, cs, pf = line.rstrip("\n").split("\t")
        p(f"| {c} | {NAMES[t]} | {n} | {float(tc):.1f} µs | {cs} | {pf} |")

for c in ("http", "jwt", "https"):
    dso = os.path.join(out_dir, f"profile.{c}.dso.txt")
    sym = os.path.join(out_dir, f"profile.{c}.sym.txt")
    if os.path.exists(dso):
        p("")
        p(f"### perf record, Baton agent, case {c} (cpu-clock samples, self time)")
        p("")
        p("```")
        p(open(dso).read().rstrip())
        if os.path.exists(sym):
            p("")
            p("\n".join(open(sym).read().splitlines()[:30]))
        p("```")

p("")
p("### Environment")
p("")
for key, label in (("machine", "machine"), ("nginx", "nginx"), ("haproxy", "HAProxy"),
                   ("wrk", "wrk"), ("openssl", "OpenSSL"), ("baton", "Baton"),
                   ("tls_nginx", "TLS nginx"), ("tls_haproxy", "TLS HAProxy"),
                   ("tls_baton", "TLS Baton"), ("load", "load average"), ("date", "date"),
                   ("command", "command"), ("out", "raw results")):
    p(f"- {label}: {meta.get(key, '?')}")
print("\n".join(out))
