"""Throughput of the reference models: images/s for inference and for a training step, at several
batch sizes (Canziani et al. 2016, "inference time vs batch size").

    python3 run.py bench models --quick
    python3 benchmarks/bench_models.py --models resnet18 mobilenet_v2 --batch-sizes 1 16 64

On a GPU each model also runs with automatic mixed precision (bfloat16/float16 autocast) and
channels_last memory format. Timings synchronize the device; the first iterations are warm-up.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

try:
    import cnnlab
except ImportError:  # running from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    import cnnlab
from cnnlab import models
from cnnlab.analysis import model_summary

__all__ = ["main", "bench_model"]

# model -> (input size, number of classes): the CIFAR networks get 32x32 images
DEFAULT_MODELS = {"resnet18": 224, "mobilenet_v2": 224, "alexnet": 224, "resnet20": 32}


def _image_size(name):
    return DEFAULT_MODELS.get(name, 32 if name in ("resnet20", "resnet32", "resnet44", "resnet56",
                                                   "resnet110", "vgg8_cifar") else 224)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, warmup, iters, min_time):
    for _ in range(warmup):
        fn()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while n < iters or time.perf_counter() - t0 < min_time:
        fn()
        n += 1
        if n >= 10 * iters:
            break
    _sync(device)
    return (time.perf_counter() - t0) / n


def bench_model(name, batch_size, device, mode="fp32", warmup=2, iters=5, min_time=0.0):
    """Seconds per batch for inference and for one SGD training step.

    Args:
        name: registered model name.
        batch_size: images per batch.
        device: torch.device.
        mode: ``"fp32"`` or ``"amp"`` (autocast + channels_last; on CPU bfloat16 autocast).
        warmup, iters: untimed and (at least) timed iterations; ``min_time`` seconds at least.

    Returns:
        dict with ``infer_s``, ``train_s`` (seconds per batch) and images/s for both.
    """
    size = _image_size(name)
    num_classes = 10 if size == 32 else 1000
    torch.manual_seed(0)
    net = models.create(name, num_classes=num_classes).to(device)
    x = torch.randn(batch_size, 3, size, size, device=device)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    amp = mode == "amp"
    if amp:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp)

    def infer():
        with torch.no_grad(), autocast():
            net(x)

    def train():
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = net(x)
            out = out[0] if isinstance(out, tuple) else out
            loss = loss_fn(out.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    net.eval()
    infer_s = _time(infer, device, warmup, iters, min_time)
    net.train()
    train_s = _time(train, device, warmup, iters, min_time)
    return {"infer_s": infer_s, "train_s": train_s, "infer_ips": batch_size / infer_s,
            "train_ips": batch_size / train_s}


def main(argv=None) -> int:
    """Command line: ``--models``, ``--batch-sizes``, ``--device``, ``--modes``, ``--quick``."""
    p = argparse.ArgumentParser(prog="bench models", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cnnlab.device())")
    p.add_argument("--modes", nargs="+", choices=["fp32", "amp"], default=None,
                   help="default: fp32 on CPU, fp32 and amp on a GPU")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="small batches, few iterations (CI smoke run)")
    args = p.parse_args(argv)

    device = cnnlab.device(args.device)
    on_gpu = device.type == "cuda"
    unknown = [m for m in args.models if m not in models.list_models()]
    if unknown:
        p.error(f"unknown models {unknown}; available: {', '.join(models.list_models())}")
    if args.batch_sizes is None:
        args.batch_sizes = [1, 8] if args.quick else ([1, 16, 64, 256] if on_gpu else [1, 8, 32])
    modes = args.modes or (["fp32", "amp"] if on_gpu else ["fp32"])
    iters = args.iters or (2 if args.quick else 10)
    warmup = 1 if args.quick else 3
    min_time = 0.0 if args.quick else 1.0

    name = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"models benchmark on {name}, torch {torch.__version__}; images/s (higher is better)")
    head = f"{'model':<14}{'input':>6}{'GFLOPs':>8}{'mode':>6}{'batch':>7}{'infer img/s':>13}" \
           f"{'train img/s':>13}{'infer ms/batch':>16}"
    print(head)
    print("-" * len(head))
    for m in args.models:
        size = _image_size(m)
        gflops = model_summary(m, (3, size, size), num_classes=10 if size == 32 else 1000).total_flops / 1e9
        for mode in modes:
            for b in args.batch_sizes:
                r = bench_model(m, b, device, mode, warmup=warmup, iters=iters, min_time=min_time)
                print(f"{m:<14}{size:>6}{gflops:>8.3f}{mode:>6}{b:>7}{r['infer_ips']:>13.1f}"
                      f"{r['train_ips']:>13.1f}{1e3 * r['infer_s']:>16.2f}", flush=True)
    print("GFLOPs: multiply-adds per image (cnnlab.analysis). train = forward + backward + SGD step.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
