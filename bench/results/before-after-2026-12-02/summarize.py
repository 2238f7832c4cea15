#!/usr/bin/env python3
"""Reads raw/r*-{before,after}.md (bench --quick --no-e2e reports) and prints the per-size
before/after table: mean Mpps per column, after/before ratio of the means, and the spread
(min-max of the per-round after/before ratios, each round's pair run back to back)."""
import glob, os, re, statistics, sys

d = sys.argv[1] if len(sys.argv) > 1 else "raw"
COLS = {  # column name in the report -> label
    "fwd ns/pkt": "forward",
    "rev ns/pkt": "reverse",
    "2 workers fwd Mpps": "2 workers fwd",
    "2 workers rev Mpps": "2 workers rev",
    "raw open ns": "raw open (ring)",
    "raw seal ns": "raw seal (ring)",
}

def parse(path):
    rows = {}
    lines = open(path).read().splitlines()
    for i, l in enumerate(lines):
        if l.startswith("| size | fwd Mpps"):
            hdr = [c.strip() for c in l.strip("|").split("|")]
            for r in lines[i + 2:]:
                if not r.startswith("|"):
                    break
                cells = [c.strip() for c in r.strip("|").split("|")]
                rows[cells[0]] = dict(zip(hdr, cells))
            break
    out = {}
    for size, r in rows.items():
        out[size] = {}
        for c, lab in COLS.items():
            v = float(r[c])
            # ns/pkt columns -> Mpps; Mpps columns stay
            out[size][lab] = 1000.0 / v if "ns" in c else v
    return out

runs = {}
for p in sorted(glob.glob(os.path.join(d, "r*-*.md"))):
    m = re.match(r"r(\d+)-(before|after)\.md", os.path.basename(p))
    runs.setdefault(int(m.group(1)), {})[m.group(2)] = parse(p)
rounds = sorted(k for k in runs if len(runs[k]) == 2)
sizes = list(runs[rounds[0]]["before"].keys())
print(f"rounds: {len(rounds)}; Mpps per on-CPU second (ns/pkt converted), mean over rounds\n")
print("| size | what | before Mpps (each round) | after Mpps (each round) | after/before (means) | per-round ratios: median (min-max) | ns/pkt before -> after (medians) |")
print("|---|---|---|---|---|---|---|")
for s in sizes:
    for lab in COLS.values():
        b = [runs[k]["before"][s][lab] for k in rounds]
        a = [runs[k]["after"][s][lab] for k in rounds]
        rr = [x / y for x, y in zip(a, b)]
        ratio = statistics.mean(a) / statistics.mean(b)
        print(f"| {s} | {lab} | {statistics.mean(b):.3f} ({', '.join(f'{x:.2f}' for x in b)}) "
              f"| {statistics.mean(a):.3f} ({', '.join(f'{x:.2f}' for x in a)}) "
              f"| {ratio:.3f} | {statistics.median(rr):.3f} ({min(rr):.3f}-{max(rr):.3f}) "
              + (f"| {1000/statistics.median(b):.0f} -> {1000/statistics.median(a):.0f} |"
                 if "workers" not in lab else "| (sum of two threads) |"))
