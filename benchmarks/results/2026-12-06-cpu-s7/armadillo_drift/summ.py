import json, sys, glob, os
def summ(path):
    rows=[json.loads(l) for l in open(path)]
    def mean(a,b):
        w=[r['eikonal'] for r in rows if a<=r['step']<=b]
        return sum(w)/len(w) if w else float('nan')
    def psnr(a,b):
        w=[r['psnr'] for r in rows if a<=r['step']<=b]
        return sum(w)/len(w) if w else float('nan')
    return rows[-1]['step'], mean(1,250), mean(250,500), mean(500,1000), mean(1000,1500), mean(1500,2500), psnr(750,1000)
for p in sorted(glob.glob('/tmp/armcpu/*/train_log.jsonl')):
    n=p.split('/')[-2]
    s=summ(p)
    print(f"{n:22s} last {s[0]:5d}  eik 1-250 {s[1]:.3f} 250-500 {s[2]:.3f} 500-1000 {s[3]:.3f} 1000-1500 {s[4]:.3f} 1500-2500 {s[5]:.3f}  psnr750-1000 {s[6]:.2f}")
