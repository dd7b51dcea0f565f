"""Cost of reading a user's module: capture with verification vs the plain forward pass.

    python -m attnviz.capture.families.bench [--sizes 32x64 64x128] [--channels 64] [--device cpu]

A user-style DANet PAM (the official code's maths: it builds S, N x N, with bmm and nn.Softmax) is run
plainly and inside `capture`, which hooks its projections, rebuilds its output in chunks of query rows
and compares. Reports the median times, the median ratio of interleaved (plain, captured) pairs, and the bytes the
record keeps (Q, K and the
log-normaliser: O(N·C'), against 4·N² bytes for S). Also `python -m attnviz.bench --only families`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from torch import nn

from attnviz.machine import machine_info, time_calls

__all__ = ["UserPam", "kept_bytes", "bench_family_capture", "main"]


class UserPam(nn.Module):
    """A PAM as users copy it: S = softmax(Q^T K) built in full, out = gamma * V S^T + x."""

    def __init__(self, channels: int):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), 0.5))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        query = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        attention = self.softmax(torch.bmm(query, self.key_conv(x).view(b, -1, h * w)))
        out = torch.bmm(self.value_conv(x).view(b, -1, h * w), attention.permute(0, 2, 1))
        return self.gamma * out.view(b, c, h, w) + x


def kept_bytes(record) -> int:
    """Bytes of the distinct tensor storages a record holds (a view counts its whole storage)."""
    seen, total = set(), 0
    for value in vars(record).values():
        tensors = value.values() if isinstance(value, dict) else [value]
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in seen:
                    seen.add(storage.data_ptr())
                    total += storage.nbytes()
    return total


def bench_family_capture(
    sizes=((32, 64), (64, 128)), channels: int = 64, repeats: int = 5, device: str = "cpu"
) -> dict:
    from attnviz.capture import capture

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    rows = []
    for height, width in sizes:
        torch.manual_seed(0)
        model = UserPam(channels).to(device).eval()
        x = torch.randn(1, channels, height, width, device=device)

        def plain(model=model, x=x):
            with torch.no_grad():
                model(x)
            sync()

        def captured(model=model, x=x):
            with torch.no_grad(), capture(model) as rec:
                model(x)
            sync()
            return rec

        # interleaved pairs (plain, captured), so that a change of load on a shared machine hits both alike
        pairs = [
            (
                time_calls(plain, 1, warmup=0 if i else 1)["median_s"],
                time_calls(captured, 1, warmup=0 if i else 1)["median_s"],
            )
            for i in range(repeats)
        ]
        plain_s = statistics.median(p for p, _ in pairs)
        captured_s = statistics.median(c for _, c in pairs)
        rec = captured()
        record = next(iter(rec.values()))
        num = height * width
        kept = kept_bytes(record)
        rows.append(
            {
                "height": height,
                "width": width,
                "num_pixels": num,
                "channels": channels,
                "qk_channels": channels // 8,
                "device": device,
                "plain_s": plain_s,
                "captured_verified_s": captured_s,
                "ratio": statistics.median(c / p for p, c in pairs),
                "repeats": repeats,
                "verified": record.verified,
                "max_error": record.max_error,
                "kept_bytes": kept,
                "kept_bytes_per_pixel": kept / num,
                "s_matrix_bytes": 4 * num * num,
            }
        )
    return {
        "case": "families",
        "model": "user-style DANet PAM (builds S)",
        "threads": torch.get_num_threads(),
        "rows": rows,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attnviz.capture.families.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", nargs="+", default=["32x64", "64x128"])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    report = bench_family_capture(sizes, args.channels, args.repeats, args.device)
    report["machine"] = machine_info()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
