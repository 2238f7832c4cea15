#!/usr/bin/env python3
"""Reads DIR/rN-{A,B}.md and prints, per size, the median of each figure over the rounds for A
and B, the median per-round B/A ratio and its min-max spread (pipeline table and per-step
tables, and the IPv6-underlay rows)."""
import glob, os, re, statistics, sys

d = sys.argv[1]

def cells(l):
    return [c.strip() for c in l.strip().strip("|").split("|")]

def parse(path):
    out = {}
    lines = open(path).read().splitlines()
    i = 0
    while i < len(lines):
        l = lines[i]
        v6 = l.startswith("| size | fwd ns/pkt | fwd / IPv4")
        if l.startswith("| size | fwd Mpps") or l.startswith("| forward |") or l.startswith("| reverse |") or v6:
            hdr = cells(l)
            kind = "IPv6 underlay " if v6 else {"size": "", "forward": "fwd step ", "reverse": "rev step "}[hdr[0]]
            for r in lines[i + 2:]:
                if not r.startswith("|"):
                    break
                c = cells(r)
                for h, v in zip(hdr[1:], c[1:]):
                    m = re.match(r"^(-?[0-9.]+)", v)
                    if m and ((kind and "/ IPv4" not in h) or h in ("fwd ns/pkt", "rev ns/pkt", "raw open ns", "raw seal ns")):
                        out[(c[0], kind + h)] = float(m.group(1))
        i += 1
    return out

LA, LB = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("A", "B")
rounds = sorted({int(re.search(r"r(\d+)-", os.path.basename(p)).group(1)) for p in glob.glob(f"{d}/r*-{LA}.md")})
A = {r: parse(f"{d}/r{r}-{LA}.md") for r in rounds if os.path.exists(f"{d}/r{r}-{LB}.md")}
B = {r: parse(f"{d}/r{r}-{LB}.md") for r in A}
keys = sorted(set().union(*[set(x) for x in A.values()]))
print(f"rounds: {len(A)}")
print("| size | figure (ns/pkt) | A median | B median | B/A median round | spread |")
print("|---|---|---|---|---|---|")
for k in keys:
    a = [A[r][k] for r in A if k in A[r] and k in B[r]]
    b = [B[r][k] for r in A if k in A[r] and k in B[r]]
    if not a:
        continue
    ratios = [y / x for x, y in zip(a, b) if x > 0]
    rs = f"{statistics.median(ratios):.3f}" if ratios else "-"
    sp = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
    print(f"| {k[0]} | {k[1]} | {statistics.median(a):.0f} | {statistics.median(b):.0f} | {rs} | {sp} |")
