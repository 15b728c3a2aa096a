"""Makes model.safetensors for `cargo run --release --example torch_import -- model.safetensors`:
a small PyTorch MLP (fixed seed), its state dict saved with safetensors, and its predictions
for the input the example uses, to compare with what the example prints.

    pip install torch safetensors
    python docs/torch_export.py            # writes model.safetensors
"""
import sys

import torch
from safetensors.torch import save_file
from torch import nn

torch.manual_seed(42)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
# ... train it here ...
path = sys.argv[1] if len(sys.argv) > 1 else "model.safetensors"
save_file(model.state_dict(), path)

# the example's input: 3 samples of 4 features, x[n, f] = (4n + f) / 10 - 0.5
x = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 10 - 0.5
with torch.no_grad():
    print(f"wrote {path}; PyTorch's predictions (one row per sample):")
    print(model(x))
