"""The cost of semlib.layout's guard (strided 1x1 convolutions kept NCHW) on the laptop ResNet-18,
which has three strided 1x1 shortcuts: training images/s with the guard versus plain channels_last,
alternated five times (this machine is noisy), median ratio printed. Timing only: unguarded
gradients can be wrong (see onednn_issue6035.py); the laptop widths do not crash.

    .venv/bin/python benchmarks/bench_layout_guard.py
"""
import time, torch, torch.nn.functional as F
from semlib import layout
from semlib.models import build_model
torch.set_num_threads(2)
def rate(guard, reps=6):
    torch.manual_seed(0)
    m = build_model("resnet18", width=0.25, stem_stride=2)
    orig = layout.exposed
    if not guard: layout.exposed = lambda mod: False
    x = torch.rand(256, 3, 32, 32).contiguous(memory_format=torch.channels_last); y = torch.randint(0, 10, (256,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    with layout.channels_last(m):
        m.train()
        def step():
            loss = F.cross_entropy(m(x), y); opt.zero_grad(); loss.backward(); opt.step()
        step(); t = time.perf_counter()
        for _ in range(reps): step()
        r = 256 * reps / (time.perf_counter() - t)
    layout.exposed = orig
    return r
rs = []
for i in range(5):
    g, u = rate(True), rate(False)
    rs.append((g, u)); print(f"guarded {g:.0f} img/s, unguarded {u:.0f} img/s, ratio {g/u:.3f}", flush=True)
import statistics as st; print("median ratio", st.median(g / u for g, u in rs))
