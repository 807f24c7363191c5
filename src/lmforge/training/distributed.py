"""Several processes, one model: torchrun, DDP or FSDP2, and the few collectives the trainer needs.

Each process torchrun starts joins one process group (NCCL between CUDA GPUs, gloo between CPUs) and wraps
the same model: DDP averages gradients across ranks; FSDP2 (`fully_shard`) also splits parameters, gradients
and optimizer state (docs/05-training.md). With one process nothing here does anything, so one code path
serves one CPU and many machines. Checkpoints hold full state dicts, gathered to rank 0 and broadcast back,
so a run resumes with any number of processes; what differs per rank (dropout's RNG, an RNN's hidden state)
is gathered too, and each rank takes its own back.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lmforge.device import resolve_device
from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, prints and writes the run directory."""
        return self.rank == 0


def from_env() -> DistInfo:
    """This process's place, as torchrun describes it; one process when not started by torchrun."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)
    except ValueError:
        raise LmforgeError("RANK, LOCAL_RANK and WORLD_SIZE must be integers; start several processes with torchrun") from None


def init(info: DistInfo, device_name: str) -> torch.device:
    """Join the process group (when there is one) and return this rank's device."""
    if not info.enabled:
        return resolve_device(device_name)
    if device_name == "mps":
        raise LmforgeError("--train.device mps cannot be shared by several processes; use --train.device cpu with torchrun")
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise LmforgeError(f"--train.device {device_name}: no CUDA GPU is visible; use --train.device cpu")
        device = torch.device("cuda", info.local_rank)  # one GPU per process, chosen by torchrun's LOCAL_RANK
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        # imported before the group exists: its functions' default argument `group=group.WORLD` would otherwise
        # keep the group alive to interpreter shutdown (torch._dynamo imports it lazily), whatever `close` does
        importlib.import_module("torch.distributed.nn.functional")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return device


def barrier(info: DistInfo) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written what the others read)."""
    if info.enabled:
        dist.barrier()


def close(info: DistInfo) -> None:
    """Leave the process group for good: its C++ object, and gloo's threads with it, end here.

    `destroy_process_group` only forgets the group; the object lives while anything refers to it (DDP does, from
    a reference cycle), and freed at interpreter shutdown with gloo's threads still running a rank could abort
    (pytorch/pytorch#190489; issue 13 defect 10). So the caller drops its models and optimizers first, and the
    collection here frees the group now. (Under FSDP, DTensor's planning cache keeps it to the end.)
    """
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()


def wrap(model: nn.Module, info: DistInfo, parallel: str, device: torch.device) -> nn.Module:
    """The module the training step calls: the model itself, DDP around it, or the model sharded in place."""
    if not info.enabled:
        return model
    if parallel == "fsdp":
        try:
            from torch.distributed.fsdp import fully_shard  # torch ≥ 2.6
        except ImportError:
            from torch.distributed._composable.fsdp import fully_shard  # torch 2.4 and 2.5
        for block in getattr(model, "blocks", []):  # shard block by block: one block's weights gathered at a time
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


@contextlib.contextmanager
def gathered(model: nn.Module) -> Iterator[None]:
    """Under FSDP, the root's own weights (embeddings, final norm, head) gathered by hand, on every rank:
    generation calls `decode`, not forward, whose hooks gather them (the blocks' forward still gathers theirs)."""
    sharded = hasattr(model, "unshard") and hasattr(model, "reshard")  # an FSDP2 module
    if sharded:
        model.unshard()
    try:
        yield
    finally:
        if sharded:
            model.reshard()


def grad_sync(wrapped: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step."""
    if hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2
        wrapped.set_requires_gradient_sync(sync)
    if hasattr(wrapped, "no_sync") and not sync:  # DDP
        return wrapped.no_sync()
    return contextlib.nullcontext()


# ------------------------------------------------------------------ collectives


def total(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The sum of a scalar over all ranks, left on the device (every rank gets the same)."""
    if info.enabled:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when it is true on one: ranks must agree on when to stop, or they wait forever."""
    if not info.enabled:
        return flag
    t = torch.tensor(1 if flag else 0, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's `obj`, in rank order."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------ state dicts: full (unsharded), on rank 0

_SAVE = {"full_state_dict": True, "cpu_offload": True}


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full model state dict on CPU, on rank 0 ({} on the others); a collective under FSDP."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(**_SAVE))


def full_state(model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and the optimizers' full state, the latter keyed by parameter name (not position), so it loads
    into any world size."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizers, options=StateDictOptions(**_SAVE))


def load_full_state(model: nn.Module, optimizers: list[torch.optim.Optimizer], model_state: dict[str, Any],
                    optimizer_state: dict[str, Any], info: DistInfo) -> None:
    """Load what `full_state` gave, which rank 0 holds (the others pass {}): rank 0 broadcasts it. Two calls, not
    `set_state_dict`: given an empty model state (the other ranks') that one skips the model, and rank 0 waits."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=info.enabled)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizers, optimizer_state, options=options)


def check_batch_split(train, processes: int) -> None:
    """Each process takes an equal share of the batch, cut into `grad_accum` equal micro-batches."""
    if train.batch_size % (train.grad_accum * processes):
        raise LmforgeError(f"--train.batch_size ({train.batch_size}) must be divisible by --train.grad_accum "
                           f"({train.grad_accum}) × the number of processes ({processes})")
