"""Int8 decoding on a CPU: PyTorch's eager dynamic quantization (what `--quantize int8` uses) against torchao's.

`generation/quantize.py` uses `torch.ao.quantization.quantize_dynamic`, whose eager API
PyTorch says will move to torchao. This times one batch-1 decode-shaped pass (24
Linear layers of GPT-2-small's MLP shapes, 768↔3072) in float32, with torch.ao's
dynamic int8 (fbgemm/x86 kernels), and with torchao's `quantize_` (dynamic int8
activations and weights; int8 weights only), in eager mode as lmforge decodes on a
CPU. torchao is not a dependency of lmforge: `pip install torchao` to run this.

    OMP_NUM_THREADS=1 python benchmarks/int8_api.py --repeats 4
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
from torch import nn


def stack() -> nn.Module:
    return nn.Sequential(*[nn.Linear(768, 3072) if i % 2 == 0 else nn.Linear(3072, 768) for i in range(24)]).eval()


def ms_per_pass(model: nn.Module, x: torch.Tensor, passes: int = 30) -> float:
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        start = time.perf_counter()
        for _ in range(passes):
            model(x)
    return (time.perf_counter() - start) / passes * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    torch.manual_seed(0)
    fp32 = stack()
    models = {"float32": fp32,
              "torch.ao quantize_dynamic (lmforge)": quantize_dynamic(copy.deepcopy(fp32),
                                                                      {nn.Linear: per_channel_dynamic_qconfig})}
    for name, config in (("torchao int8 dynamic", Int8DynamicActivationInt8WeightConfig()),
                         ("torchao int8 weight-only", Int8WeightOnlyConfig())):
        models[name] = copy.deepcopy(fp32)
        quantize_(models[name], config)
    x = torch.randn(1, 768)
    print(f"{torch.get_num_threads()} thread(s); ms per pass, rows alternate")
    print("| repeat | " + " | ".join(models) + " |\n|---:|" + "---:|" * len(models))
    for r in range(args.repeats):
        print(f"| {r + 1} | " + " | ".join(f"{ms_per_pass(m, x):.2f}" for m in models.values()) + " |", flush=True)
    with torch.inference_mode():
        ref = fp32(x)
        errors = {name: float((m(x) - ref).abs().max() / ref.abs().max()) for name, m in models.items()}
    print("largest output error relative to float32's largest output: "
          + ", ".join(f"{name} {e:.4f}" for name, e in errors.items()))


if __name__ == "__main__":
    main()
