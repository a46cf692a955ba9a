"""Where the time of one bf16 batch of the fused attention profile goes, per CUDA kernel (GPU runs)."""

import torch
from torch.profiler import ProfilerActivity, profile

from vitscope.vit.analysis.attention_profile import ProfileAccumulator, profile_batch
from vitscope.vit.analysis.precision import model_in
from vitscope.vit.analysis.rings import RingGeometry
from vitscope.vit.models import load_model

lm = model_in(load_model("random:vit-base", device="cuda"), "bfloat16")
x = torch.randn(64, 3, 224, 224, device="cuda", dtype=torch.bfloat16)
geo = RingGeometry.build(lm.layout, lm.device, lm.dtype)
acc = ProfileAccumulator(geo, lm.num_layers, lm.num_heads, lm.device)
for _ in range(3):
    profile_batch(lm, x, acc)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        profile_batch(lm, x, acc)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=50))
