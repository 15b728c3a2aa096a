"""Reference files for crates/layers/tests/torch_import.rs: PyTorch nn.Sequential models saved
with safetensors.torch.save_file(model.state_dict(), ...), and for each an `.io.safetensors`
file with an input `x` and PyTorch's output `y`, both stored in flux-rs's layout (dimensions
reversed: features first, batch last, so that row-major [N, C] reads as column-major [C, N]).

Run from the repository root with PyTorch 2.x and safetensors installed:

    python crates/layers/tests/data/make_torch_refs.py
"""
import os

import torch
from safetensors.torch import save_file
from torch import nn

OUT = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def flux_layout(t):
    """[N, C, ...] row-major -> the same elements as flux-rs sees them (dims reversed)."""
    return t.permute(*reversed(range(t.dim()))).contiguous()


def save(name, model, x, y):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, f"{name}.safetensors"))
    save_file({"x": flux_layout(x), "y": flux_layout(y)}, os.path.join(OUT, f"{name}.io.safetensors"))
    print(name, {k: tuple(v.shape) for k, v in model.state_dict().items()})


# 1. MLP: Linear, ReLU, Linear (keys 0.* and 2.*)
mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
x = torch.randn(5, 4)
with torch.no_grad():
    save("mlp", mlp, x, mlp(x))

# 2. Normalisation: Linear, BatchNorm1d, ReLU, LayerNorm, Linear, in eval mode with running
#    statistics from a few training batches (num_batches_tracked is then 3)
norm = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.LayerNorm(6), nn.Linear(6, 2))
with torch.no_grad():
    for p in norm[3].parameters():
        p.add_(0.3 * torch.randn_like(p))
    for p in norm[1].parameters():
        p.add_(0.3 * torch.randn_like(p))
    norm.train()
    for _ in range(3):
        norm(2.0 * torch.randn(16, 4) + 1.0)
norm.eval()
x = torch.randn(7, 4)
with torch.no_grad():
    save("norm", norm, x, norm(x))

# 3. BatchNorm2d on images [N, C, H, W] (flux-rs: [W, H, C, N])
bn2 = nn.Sequential(nn.BatchNorm2d(3))
with torch.no_grad():
    bn2.train()
    for _ in range(2):
        bn2(torch.randn(4, 3, 5, 6) * 3.0 - 1.0)
    bn2[0].weight.add_(torch.randn(3))
    bn2[0].bias.add_(torch.randn(3))
bn2.eval()
x = torch.randn(2, 3, 5, 6)
with torch.no_grad():
    save("bn2d", bn2, x, bn2(x))


# 4. Recurrent: Linear(3, 4) on every step, then LSTM(4, 5), GRU(5, 4), RNN(4, 3, tanh), each one
#    layer, unidirectional, zero initial state; sequence [L=6, N=2, 3]. PyTorch's default init
#    gives nonzero bias_hh, so the two LSTM/RNN biases must be summed.
class Rnns(nn.Sequential):
    def forward(self, x):
        x = self[0](x)
        for m in list(self)[1:]:
            x, _ = m(x)
        return x


rnns = Rnns(nn.Linear(3, 4), nn.LSTM(4, 5), nn.GRU(5, 4), nn.RNN(4, 3))
x = torch.randn(6, 2, 3)
with torch.no_grad():
    save("rnns", rnns, x, rnns(x))

# 5. f64: a double-precision MLP
mlp64 = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
x = torch.randn(3, 3, dtype=torch.float64)
with torch.no_grad():
    save("mlp64", mlp64, x, mlp64(x))

# 6. Convolutions: Conv2d (kernel 3x2: PyTorch [cout, cin, kh, kw], ours [kw, kh, cin, cout]),
#    ReLU, Conv1d is not mixed in (a different rank); images [N, C, H, W] (flux-rs [W, H, C, N])
conv = nn.Sequential(nn.Conv2d(2, 4, (3, 2)), nn.ReLU(), nn.Conv2d(4, 3, (2, 2), bias=False))
x = torch.randn(2, 2, 5, 6)
with torch.no_grad():
    save("conv2d", conv, x, conv(x))

# 7. Conv1d on [N, C, L] (flux-rs [L, C, N])
conv1 = nn.Sequential(nn.Conv1d(3, 2, 4))
x = torch.randn(2, 3, 7)
with torch.no_grad():
    save("conv1d", conv1, x, conv1(x))

# 8. Embedding(10, 4) on tokens [3, 1, 7, 0] (output [4 tokens, 4] -> flux-rs [4, 4 tokens])
emb = nn.Sequential(nn.Embedding(10, 4))
tokens = torch.tensor([3, 1, 7, 0])
with torch.no_grad():
    save("embedding", emb, tokens.double(), emb(tokens))

# 9. ConvTranspose2d(2 => 3, kernel (3, 2), stride 2): PyTorch weight [cin, cout, kh, kw]
convt = nn.Sequential(nn.ConvTranspose2d(2, 3, (3, 2), stride=2))
x = torch.randn(2, 2, 4, 5)
with torch.no_grad():
    save("convtranspose2d", convt, x, convt(x))
