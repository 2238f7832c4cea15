#!/usr/bin/env python3
"""Reads OUT/{xdp,udp}-N/results.md (run.sh) and prints, per sink and round: delivered kpps at
`max` per gateway, direction and size, with the ratios dataplane / wireguard-go and dataplane /
boringtun; p99 one-way latency at 40 kpps (and its ratio); TCP both ways (and its ratio)."""
import glob, os, re, sys

out = sys.argv[1]
GW = {"dataplane": "dp", "wireguard-go": "wg", "boringtun": "bt"}

def cells(l):
    return [c.strip() for c in l.strip().strip("|").split("|")]

def parse(path):
    load, tcp = {}, {}
    for l in open(path).read().splitlines():
        c = cells(l) if l.startswith("|") else []
        if len(c) == 16 and c[0] in GW:
            g, d, size, asked = GW[c[0]], ("c>s" if c[1].startswith("client") else "s>c"), c[2], c[3].rstrip("*")
            load[(g, d, size, asked)] = (float(c[6]), float(c[11]))  # delivered kpps, p99 us
        if len(c) == 3 and c[0].split(" ")[0] in GW and c[1].replace(".", "").isdigit():
            tcp[GW[c[0].split(" ")[0]]] = (float(c[1]), float(c[2]))
    return load, tcp

def r(a, b):
    return f"{a / b:.2f}" if b else "-"

for d in sorted(glob.glob(os.path.join(out, "*-*"))):
    f = os.path.join(d, "results.md")
    if not os.path.exists(f):
        continue
    load, tcp = parse(f)
    print(f"\n### {os.path.basename(d)}\n")
    print("| what | dataplane | wireguard-go | boringtun | dp/wg | dp/bt |")
    print("|---|---|---|---|---|---|")
    for size in ("64 B", "1420 B"):
        for dr in ("c>s", "s>c"):
            v = [load.get((g, dr, size, "max"), (0, 0))[0] for g in ("dp", "wg", "bt")]
            print(f"| {dr} {size} max, delivered kpps | {v[0]:.1f} | {v[1]:.1f} | {v[2]:.1f} | {r(v[0], v[1])} | {r(v[0], v[2])} |")
    for size in ("64 B",):
        for dr in ("c>s", "s>c"):
            v = [load.get((g, dr, size, "40 kpps"), (0, 0))[1] for g in ("dp", "wg", "bt")]
            print(f"| {dr} {size} 40 kpps, p99 us | {v[0]:.0f} | {v[1]:.0f} | {v[2]:.0f} | {r(v[0], v[1])} | {r(v[0], v[2])} |")
    for i, dr in enumerate(("up", "down")):
        v = [tcp.get(g, (0, 0))[i] for g in ("dp", "wg", "bt")]
        print(f"| TCP {dr}, Mbit/s | {v[0]:.0f} | {v[1]:.0f} | {v[2]:.0f} | {r(v[0], v[1])} | {r(v[0], v[2])} |")

# Per core over the whole run (/proc/stat before and after): where the CPU time went.
print("\n| run | core | user % | system % | softirq % | idle % | steal % |")
print("|---|---|---|---|---|---|---|")
for d in sorted(glob.glob(os.path.join(out, "*-*"))):
    b, a = os.path.join(d, "stat.before"), os.path.join(d, "stat.after")
    if not (os.path.exists(b) and os.path.exists(a)):
        continue
    rows = lambda p: {l.split()[0]: [int(x) for x in l.split()[1:9]] for l in open(p)}
    rb, ra = rows(b), rows(a)
    for cpu in sorted(k for k in ra if k != "cpu"):
        dlt = [y - x for x, y in zip(rb[cpu], ra[cpu])]
        tot = sum(dlt) or 1
        user, nice, system, idle, iowait, irq, softirq, steal = dlt
        print(f"| {os.path.basename(d)} | {cpu} | {100*(user+nice)/tot:.0f} | {100*system/tot:.0f} | {100*softirq/tot:.0f} | {100*(idle+iowait)/tot:.0f} | {100*steal/tot:.0f} |")
