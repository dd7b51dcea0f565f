"""Speed and memory figures: python -m attnviz.bench [--only pam click capture] [--out FILE]

Writes JSON (default checkpoints/bench.json, beside results.json) with the machine it ran on. Each
case runs in a fresh subprocess so that its peak memory (ru_maxrss growth
over the process's state just before the case) is its own.

Cases:
- pam:     DANet position attention, naive (builds S) vs chunked, C = 512,
           N up to 32768 (a 1/8 feature map of a 1024x2048 image).
- transformers: capture of ViT-S/16 and DeiT-S/16 (timm, 224 px) from SDPA's arguments vs their plain
           forward and a bare observer's, and a layer's records against the S they stand for (issue 32).
- click:   what a click on the position page costs: one row / column of S
           from a cached capture of a shipped DANet model, vs a full forward.
(The app's own cost of a click, the whole position-page rerun, is measured by the app layer:
python -m attnviz.app_bench, into the same file.)
- capture: forward time of a shipped model with and without capture.
- attribution: Grad-CAM and Integrated Gradients (32 steps) for one pixel of a shipped DANet, CPU and GPU.
- families: capture with verification of a user-style DANet PAM (C = 64, N = 2048 and 8192), recognised by
           structure (attnviz.capture.families), vs its plain forward; the bytes the record keeps.
- train:   training steps of danet-eca (width 0.5, 360x480, batch 8): augmentation time and step time with
           the data on the host vs on the device, with and without the PAM affinity loss; GPU peak memory.
- interventions: a forward with every module of one attention kind switched off or flat, against the plain
           forward with capture (danet-eca's ECA, PAM and CAM; fcn-cbam's CBAM), interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from attnviz.machine import machine_info, memory_mib, time_alternating, time_calls
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

__all__ = ["main"]


def _sync(device: str) -> None:
    """Wait for the GPU's queued work, so that a timer measures it (nothing to wait for on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- cases (run in a child)


def _case_pam(mode: str, num_pixels: int, channels: int, chunk: int, device: str) -> dict:
    import resource

    from attnviz.modules.danet import position_attention, position_attention_reference

    torch.manual_seed(0)
    qk = channels // 8
    q = torch.randn(1, num_pixels, qk, device=device)
    k = torch.randn(1, num_pixels, qk, device=device)
    v = torch.randn(1, channels, num_pixels, device=device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def run():
        with torch.no_grad():
            if mode == "naive":
                position_attention_reference(q, k, v)
            else:
                position_attention(q, k, v, chunk=chunk)
        _sync(device)

    repeats = 3 if num_pixels <= 16384 else 1
    timing = time_calls(run, repeats, warmup=1 if num_pixels <= 4096 else 0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "mode": mode,
        "num_pixels": num_pixels,
        "channels": channels,
        "chunk": chunk if mode != "naive" else None,
        "device": device,
        **timing,
        "peak_extra_mib": round((after - before) / 1024, 1),
        "s_matrix_mib": round(num_pixels**2 * 4 / 2**20, 1),
    }
    if device == "cuda":
        result["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _shipped_danet() -> str:
    """danet-eca when shipped, else the first loadable DANet checkpoint."""
    from attnviz.models.checkpoint import scan_checkpoints

    names = [info.name for info in scan_checkpoints()[0] if info.config.head == "danet"]
    if not names:
        raise SystemExit("no DANet checkpoint in checkpoints/")
    return "danet-eca" if "danet-eca" in names else names[0]


def _case_click(name: str, device: str) -> dict:
    from attnviz.analysis.forward import image_to_tensor
    from attnviz.capture import PositionAttentionRecord, capture
    from attnviz.data.samples import list_samples, load_sample
    from attnviz.models import load_checkpoint

    model, _ = load_checkpoint(name, device=device)
    image = load_sample(list_samples()[0]).image
    x = image_to_tensor(image, device)

    def forward():
        with torch.no_grad(), capture(model) as rec:
            model(x)
        return rec

    forward_timing = time_calls(forward, 5)
    rec = forward()
    record = next(iter(rec.of_type(PositionAttentionRecord).values()))
    pixels = record.num_pixels
    rows = time_calls(lambda: [record.row(i) for i in range(0, pixels, max(1, pixels // 50))], 5)
    cols = time_calls(lambda: [record.column(i) for i in range(0, pixels, max(1, pixels // 50))], 5)
    per = len(range(0, pixels, max(1, pixels // 50)))
    return {
        "model": name,
        "device": device,
        "image": list(image.shape),
        "feature_map": [record.height, record.width],
        "forward_with_capture_s": forward_timing["median_s"],
        "row_ms": 1000 * rows["median_s"] / per,
        "column_ms": 1000 * cols["median_s"] / per,
    }


def _case_capture(name: str, device: str) -> dict:
    from attnviz.capture import capture
    from attnviz.models import load_checkpoint

    model, _ = load_checkpoint(name, device=device)
    x = torch.rand(1, 3, 360, 480, device=device)

    def plain():
        with torch.no_grad():
            model(x)

    def captured():
        with torch.no_grad(), capture(model):
            model(x)

    a, b = time_calls(plain, 7), time_calls(captured, 7)
    return {
        "model": name,
        "device": device,
        "plain_s": a["median_s"],
        "captured_s": b["median_s"],
        "overhead_pct": 100 * (b["median_s"] / a["median_s"] - 1),
    }


def _case_train(
    device: str, augment_on: str, steps: int, batch_size: int = 8, width: float = 0.5, pam_affinity: float = 0.0
) -> dict:
    """Training steps of danet-eca at full resolution (360x480 crops): the time of the augmentation and of
    the optimiser step, and the peak GPU memory. `augment_on` "host": the data stays on the CPU and each
    batch is copied over (the old loop); "device": the data lives on the training device and is augmented
    there (the current loop). Random photos: the cost does not depend on the content."""
    from attnviz.models import build_model
    from attnviz.train import TrainSettings, _training_step, augment_batch, enet_class_weights

    torch.manual_seed(0)
    settings = TrainSettings(batch_size=batch_size, pam_affinity=pam_affinity)
    images = torch.randint(0, 256, (2 * batch_size, 3, 360, 480), dtype=torch.uint8)
    labels = torch.randint(0, 12, (2 * batch_size, 360, 480), dtype=torch.uint8)
    data_device = device if augment_on == "device" else "cpu"
    images, labels = images.to(data_device), labels.to(data_device)
    model = build_model("danet-eca", width=width, input_scale=1.0).to(device).train()
    tap = None
    if pam_affinity:
        from attnviz.train import _ProjectionTap

        tap = _ProjectionTap(model.head.pam)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    weights = enet_class_weights(labels.cpu()).to(device)
    generator = torch.Generator().manual_seed(0)
    cuda = device == "cuda"

    data_s, step_s = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 1):  # the first step warms up
        _sync(device)
        started = time.perf_counter()
        x, y = augment_batch(
            images, labels, torch.randperm(len(images), generator=generator)[:batch_size], settings, generator
        )
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        _sync(device)
        augmented = time.perf_counter()
        _training_step(model, optimizer, x, y, weights, settings, tap, use_amp=cuda)
        _sync(device)
        if step:
            data_s.append(augmented - started)
            step_s.append(time.perf_counter() - augmented)
    steps_per_epoch = -(-367 // batch_size)
    per_step = statistics.median(data_s) + statistics.median(step_s)
    result = {
        "model": "danet-eca",
        "width": width,
        "crop": [360, 480],
        "batch_size": batch_size,
        "pam_affinity": pam_affinity,
        "device": device,
        "augment_on": augment_on,
        "steps": steps,
        "augment_ms": round(1000 * statistics.median(data_s), 1),
        "step_ms": round(1000 * statistics.median(step_s), 1),
        "epoch_s_estimate": round(steps_per_epoch * per_step, 1),
        "epoch_note": f"{steps_per_epoch} steps of (median augment + median step), 367 training photos",
    }
    if cuda:
        result["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _case_attribution(name: str, device: str, steps: int = 32) -> dict:
    """Attribution of one output pixel of a shipped model on a 360x480 sample photo: Grad-CAM at the layer
    feeding the head, and Integrated Gradients with `steps` steps (4 at a time)."""
    from attnviz.analysis.attribution import grad_cam, integrated_gradients
    from attnviz.analysis.forward import image_to_tensor
    from attnviz.data.samples import list_samples, load_sample
    from attnviz.models import load_checkpoint

    model, card = load_checkpoint(name, device=device)
    x = image_to_tensor(load_sample(list_samples()[0]).image, device)
    target = (3, 300, 240)  # Road, low in the middle of the photo

    def synced(fn):
        def run():
            fn()
            _sync(device)

        return run

    cam = time_calls(synced(lambda: grad_cam(model, x, target)), repeats=5)
    ig = time_calls(synced(lambda: integrated_gradients(model, x, target, steps=steps)), repeats=2)
    return {
        "model": name,
        "width": card["config"]["width"],
        "image": [360, 480],
        "device": device,
        "grad_cam_s": cam["median_s"],
        "integrated_gradients_s": ig["median_s"],
        "ig_steps": steps,
        "ig_internal_batch_size": "4 (at most four 360x480 photos at once)",
    }


def _case_memory(name: str, work: str, ig_steps: int = 8) -> dict:
    """A server's peak memory for the largest upload (on the CPU, in a process of its own for each `work`, so
    that no freed memory of another is reused; Linux's VmHWM reset first): "upload", decoding a 4000x3000 JPEG
    and the forward pass with capture; "grad_cam" or "integrated_gradients" (`ig_steps`, internal batch
    chosen by attnviz.analysis.attribution) of one pixel of that 768x1024 photo. The peak over the memory
    before it, in MiB."""
    import io

    import numpy as np
    from PIL import Image

    from attnviz.analysis.attribution import grad_cam, integrated_gradients
    from attnviz.analysis.forward import analyse, image_to_tensor
    from attnviz.data.images import decode_image
    from attnviz.data.samples import list_samples, load_sample
    from attnviz.models import load_checkpoint

    def peak_of(fn) -> dict:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS
        before = memory_mib("VmRSS")
        started = time.perf_counter()
        fn()
        return {
            "peak_over_before_mib": round(memory_mib("VmHWM") - before, 1),
            "seconds": round(time.perf_counter() - started, 2),
        }

    model, _ = load_checkpoint(name)
    model.eval()
    sample = load_sample(list_samples()[0]).image
    analyse(model, sample)  # the server has served a sample photo before
    grad_cam(model, image_to_tensor(sample), (3, 300, 240))
    rng = np.random.default_rng(0)
    x, y = np.arange(4000, dtype=np.uint32), np.arange(3000, dtype=np.uint32)[:, None]
    ramp = np.empty((3000, 4000, 3), np.uint8)
    ramp[..., 0], ramp[..., 1], ramp[..., 2] = x * 255 // 4000, y * 255 // 3000, (x + y) % 256
    buffer = io.BytesIO()
    Image.fromarray(ramp + rng.integers(0, 16, ramp.shape, dtype=np.uint8)).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    about = {"model": name, "device": "cpu", "work": work, "file": "4000x3000 JPEG", "bytes": len(data)}
    if work == "upload":
        return {**about, **peak_of(lambda: analyse(model, decode_image(data)))}
    image = image_to_tensor(decode_image(data))
    target = (3, 600, 512)
    if work == "grad_cam":
        return {**about, "image": list(image.shape[-2:]), **peak_of(lambda: grad_cam(model, image, target))}
    return {
        **about,
        "image": list(image.shape[-2:]),
        "steps": ig_steps,
        **peak_of(lambda: integrated_gradients(model, image, target, steps=ig_steps)),
    }


def _case_families(device: str) -> dict:
    """attnviz.capture.families.bench: capture + verification of a user-style PAM vs its plain forward."""
    from attnviz.capture.families.bench import bench_family_capture

    return bench_family_capture(sizes=((32, 64), (64, 128)), channels=64, repeats=5, device=device)


class _Observer(TorchFunctionMode):
    """A TorchFunctionMode that only passes each op on: what observing every op from Python costs by itself."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _capture_cost(model, x, device: str, repeats: int) -> tuple[dict, float, float, float]:
    """(one capture's records, median seconds of the plain forward, of the forward with capture, of the forward
    under a bare observer `_Observer`), each warmed up once and timed `repeats` times, in turn
    (attnviz.machine.time_alternating: a drift weighs on each alike). Each capture's records are dropped before
    the next, as a caller that keeps none would."""
    from attnviz.capture import capture

    def plain():
        with torch.no_grad():
            model(x)
        _sync(device)

    def captured():
        with torch.no_grad(), capture(model) as rec:
            model(x)
        _sync(device)
        return rec

    def observed():
        with torch.no_grad(), _Observer():
            model(x)
        _sync(device)

    rec = captured()  # warms it up (and is returned: the records of one capture)
    timings = time_alternating((plain, captured, observed), repeats, warmup=1)
    return rec, *(timing["median_s"] for timing in timings)


def _case_readers(device: str, repeats: int = 9) -> dict:
    """Capture with every reader (own modules, adapters, families, the dataflow reader) against the plain
    forward: timm's resnet50 (no attention: the readers' cost on a plain network) and a net of four timm
    attention layers that only the dataflow reader reads (SelectiveKernel, NonLocalAttn, GatherExcite,
    GlobalContext; 256 channels on 28x28 and 56x56), 224x224, batch 1, random weights."""
    import timm
    from timm.layers.gather_excite import GatherExcite
    from timm.layers.global_context import GlobalContext
    from timm.layers.non_local_attn import NonLocalAttn
    from timm.layers.selective_kernel import SelectiveKernel
    from torch import nn

    def long_tail() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 256, 7, stride=4, padding=3),
            SelectiveKernel(256, 256),
            nn.MaxPool2d(2),
            NonLocalAttn(256),
            GatherExcite(256, use_mlp=False),
            GlobalContext(256, fuse_scale=True),
            nn.Conv2d(256, 10, 1),
        )

    rows = []
    for name, model in (
        ("timm resnet50", timm.create_model("resnet50", pretrained=False)),
        ("four long-tail layers", long_tail()),
    ):
        model = model.eval().to(device)
        x = torch.rand(1, 3, 224, 224, device=device)

        rec, plain_s, captured_s, _ = _capture_cost(model, x, device, repeats)
        rows.append(
            {
                "model": name,
                "device": device,
                "records": len(rec),
                "plain_s": plain_s,
                "captured_s": captured_s,
                "ratio": captured_s / plain_s,
            }
        )
    return {"rows": rows}


def _case_transformers(device: str, repeats: int = 41) -> dict:
    """Capture of a ViT's attention from SDPA's arguments (issue 32) against its plain forward: timm's ViT-S/16
    and DeiT-S/16 distilled at 224x224, batch 1, random weights, beside the same forward under a bare observer
    (`_Observer`: what seeing every op from Python costs before anything is read); and what a layer's records
    hold (q·scale and k per head: O(heads · N · d)) against the S they stand for (heads · N², never stored)."""
    import timm

    from attnviz.capture.records import TokenAttentionRecord
    from attnviz.sizedcache import held_bytes

    rows = []
    for arch in ("vit_small_patch16_224", "deit_small_distilled_patch16_224"):
        model = timm.create_model(arch, pretrained=False).eval().to(device)
        x = torch.rand(1, 3, 224, 224, device=device)

        rec, plain_s, captured_s, observed_s = _capture_cost(model, x, device, repeats)
        tokens = [r for r in rec.values() if isinstance(r, TokenAttentionRecord)]
        layer = [rec[name] for name in rec if name.startswith("blocks.0.attn:")]  # the first layer's heads
        n = tokens[0].num_pixels + tokens[0].prefix_queries
        rows.append(
            {
                "model": arch,
                "device": device,
                "records": len(tokens),
                "tokens": n,
                "plain_s": plain_s,
                "captured_s": captured_s,
                "ratio": captured_s / plain_s,  # of the medians
                "observed_s": observed_s,  # under a bare TorchFunctionMode: what observing every op costs alone
                "observed_ratio": observed_s / plain_s,
                "layer_record_bytes": held_bytes(layer),
                "layer_s_bytes": 4 * len(layer) * n * n,
            }
        )
    return {"rows": rows, "repeats": repeats}


def _case_interventions(names: tuple[str, ...], device: str, repeats: int = 7) -> dict:
    """A switched forward (attnviz.capture.interventions: every module of each attention kind off, then flat)
    against the plain forward with capture, on a sample photo at 360x480, batch 1: interleaved rounds, the median
    of each and the median ratio of the pairs."""
    import numpy as np

    from attnviz.analysis.forward import analyse, image_to_tensor
    from attnviz.analysis.switch import cbam_parents, switch_groups
    from attnviz.capture import capture
    from attnviz.capture.interventions import MODES, Intervention, intervened
    from attnviz.data.samples import list_samples, load_sample
    from attnviz.models import load_checkpoint

    image = load_sample(list_samples()[0]).image
    rows = []
    for name in names:
        model = load_checkpoint(name)[0].eval().to(device)
        x = image_to_tensor(image, device)
        records = analyse(model, image, keep_features=False).records
        for kind, paths in switch_groups(records, cbam_parents(records)).items():
            for mode in MODES:
                switch = Intervention(mode, paths)

                def timed(intervention, model=model, x=x):
                    started = time.perf_counter()
                    with torch.no_grad(), capture(model), intervened(model, intervention):
                        model(x)
                    _sync(device)
                    return time.perf_counter() - started

                timed(None), timed(switch)  # warm up both
                pairs = [(timed(None), timed(switch)) for _ in range(repeats)]
                plain, switched = np.array(pairs).T
                rows.append(
                    {
                        "model": name,
                        "kind": kind,
                        "mode": mode,
                        "modules": len(paths),
                        "device": device,
                        "captured_s": float(np.median(plain)),
                        "switched_s": float(np.median(switched)),
                        "ratio": statistics.median(b / a for a, b in pairs),
                    }
                )
    return {"image": [360, 480], "repeats": repeats, "rows": rows}


_CASES = {
    "interventions": _case_interventions,
    "readers": _case_readers,
    "transformers": _case_transformers,
    "pam": _case_pam,
    "click": _case_click,
    "capture": _case_capture,
    "train": _case_train,
    "attribution": _case_attribution,
    "families": _case_families,
    "memory": _case_memory,
}


def _run_child(case: str, **kwargs) -> dict:
    code = (
        "import json, sys, torch; from attnviz import bench; "
        f"torch.set_num_threads({torch.get_num_threads()}); "
        f"print('RESULT' + json.dumps(bench._CASES[{case!r}](**json.loads(sys.argv[1]))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"case": case, **kwargs, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(_CASES), default=sorted(_CASES))
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT_DIR / "bench.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pam-sizes", type=int, nargs="+", default=[1024, 4096, 16384, 32768])
    parser.add_argument("--naive-max", type=int, default=16384, help="largest N for the naive PAM")
    parser.add_argument(
        "--train-steps", type=int, default=0, help="timed steps of the train case (default: 20 on a GPU, 3 on a CPU)"
    )
    args = parser.parse_args(argv)

    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    report = {
        **existing,
        "machine": machine_info(),
        "command": "python -m attnviz.bench " + " ".join(argv or sys.argv[1:]),
    }
    if "pam" in args.only:
        rows = []
        for n in args.pam_sizes:
            for mode in ("naive", "chunked"):
                if mode == "naive" and n > args.naive_max:
                    continue
                row = _run_child("pam", mode=mode, num_pixels=n, channels=512, chunk=1024, device=args.device)
                print(json.dumps(row), flush=True)
                rows.append(row)
        report["pam"] = rows
    if "click" in args.only:
        report["click"] = _run_child("click", name=_shipped_danet(), device=args.device)
        print(json.dumps(report["click"]), flush=True)
    if "capture" in args.only:
        report["capture"] = _run_child("capture", name=_shipped_danet(), device=args.device)
        print(json.dumps(report["capture"]), flush=True)
    if "attribution" in args.only:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        report["attribution"] = [_run_child("attribution", name=_shipped_danet(), device=device) for device in devices]
        for row in report["attribution"]:
            print(json.dumps(row), flush=True)
    if "memory" in args.only and Path("/proc/self/clear_refs").exists():
        report["memory"] = [
            _run_child("memory", name=_shipped_danet(), work=work)
            for work in ("upload", "grad_cam", "integrated_gradients")
        ]
        for row in report["memory"]:
            print(json.dumps(row), flush=True)
    if "families" in args.only:
        report["families"] = _run_child("families", device=args.device)
        print(json.dumps(report["families"]), flush=True)
    if "readers" in args.only:
        report["readers"] = _run_child("readers", device=args.device)
        print(json.dumps(report["readers"]), flush=True)
    if "transformers" in args.only:
        report["transformers"] = {**_run_child("transformers", device=args.device), "machine": machine_info()}
        print(json.dumps(report["transformers"]), flush=True)
    if "interventions" in args.only:
        report["interventions"] = {
            **_run_child("interventions", names=["danet-eca", "fcn-cbam"], device=args.device),
            "machine": machine_info(),  # the section's own: other sections may come from other machines
        }
        print(json.dumps(report["interventions"]), flush=True)
    if "train" in args.only:
        steps = args.train_steps or (20 if args.device == "cuda" else 3)
        rows = []
        for augment_on in ("host", "device"):
            for pam_affinity in (0.0, 1.0):
                row = _run_child(
                    "train", device=args.device, augment_on=augment_on, steps=steps, pam_affinity=pam_affinity
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
        report["train"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
