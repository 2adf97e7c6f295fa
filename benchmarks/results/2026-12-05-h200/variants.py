"""Step time of the bank presets under kernel variants (block, point threshold); prints the sizes of the
fused evaluations of one step. Used from .data/ in call7.sh (copied here as run). Usage: python .data/variants.py VARIANT -- profile_step args"""

import collections
import sys

import nsr.accel.nffb_triton as k
from nsr.encodings.nffb import NFFB

sys.path.insert(0, "benchmarks")
variant, rest = sys.argv[1], sys.argv[3:]
block = 16 if "b16" in variant else 32
limit = int(variant.split("_t")[1]) if "_t" in variant else None
sizes = collections.Counter()
orig = k.filter_bank_forward


def patched(x, *a, **kw):
    sizes[x.shape[0]] += 1
    kw.setdefault("block", block)
    return orig(x, *a, **kw)


k.filter_bank_forward = patched
if limit:
    fi = NFFB.fused_inference
    NFFB.fused_inference = lambda self, x: x.shape[0] <= limit and fi(self, x)
import profile_step  # noqa: E402 (benchmarks/ is put on the path above)

sys.argv = ["profile_step.py", *rest]
profile_step.main()
total = sum(sizes.values())
print(variant, "fused calls by size (all steps):", dict(sorted(sizes.items())), "total", total, flush=True)
