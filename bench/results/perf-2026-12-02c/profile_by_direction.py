import sys, collections
# perf script -F sym output: stacks separated by blank lines, leaf first.
stacks=[]; cur=[]
for line in open(sys.argv[1]):
    l=line.strip()
    if not l:
        if cur: stacks.append(cur); cur=[]
        continue
    parts=l.split(None,1)
    cur.append(parts[1] if len(parts)>1 else parts[0])
if cur: stacks.append(cur)
def has(st, s): return any(s in f for f in st)
groups={'forward':collections.Counter(),'reverse':collections.Counter(),'run-other':collections.Counter()}
tot=collections.Counter()
for st in stacks:
    if not has(st,'Lane::run'): continue
    if has(st,'Pipeline::wireguard'): g='forward'
    elif has(st,'Pipeline::return_traffic'): g='reverse'
    else: g='run-other'
    # attribute to leaf, plus the first fastpath/wgproto/nat/wire frame
    leaf=st[0]
    owner=next((f for f in st if any(k in f for k in ('fastpath::','wgproto::','nat::','wire::','bench::','ring::'))), '?')
    groups[g][(leaf[:70], owner[:80])]+=1
    tot[g]+=1
for g,c in groups.items():
    print(f"== {g}: {tot[g]} samples")
    for (leaf,owner),n in c.most_common(int(sys.argv[2]) if len(sys.argv)>2 else 25):
        print(f"{100*n/max(tot[g],1):5.1f}%  {leaf}   <- {owner}")
