"""Data-parallel SVI on ``torch.distributed`` (launch with ``torchrun``).

Every rank holds a replica of the model and guide (including every user's variational
parameters) and trains on its own shard of the comparisons (``rank::world_size``).
After each backward pass the gradients are averaged with an all-reduce, so the replicas
stay identical. Each rank's minibatch loss is already an unbiased estimate of the full
ELBO (the comparison plate is scaled by the *global* N and each user's terms by their
*global* number of comparisons), so the average is too, with the variance of a batch
``world_size`` times larger. A user whose comparisons sit on several ranks is handled by
that global count: each rank carries its share of the user's prior and entropy terms.

``batch_size`` is per rank: the global batch is ``world_size * batch_size``, and an
epoch has ``world_size`` times fewer steps. To match a single-process fit, divide the
batch size by the number of ranks.

CPU: backend ``gloo``; CUDA: ``nccl``, one GPU per rank (``LOCAL_RANK``). Launch::

    torchrun --nproc_per_node=4 my_fit.py                       # one machine, 4 GPUs
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 my_fit.py   # on each machine

where ``my_fit.py`` calls ``bayespal.fit(data, ..., distributed=True)``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup(device: torch.device | str) -> tuple[int, int, torch.device]:
    """Join (or create) the process group from torchrun's environment; returns
    ``(rank, world_size, device)``. On CUDA each rank takes GPU ``LOCAL_RANK``.

    Parameters
    ----------
    device:
        The requested device ('cuda' gives each rank its LOCAL_RANK GPU).
    """
    if not dist.is_available():
        raise ValueError("distributed: got True; expected a torch build with torch.distributed")
    if not dist.is_initialized():
        missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if v not in os.environ]
        if missing:
            raise ValueError(f"distributed: got True without {missing} in the environment; "
                             "expected a launch by torchrun (see bayespal.distributed)")
        device = torch.device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def broadcast_parameters(modules) -> None:
    """Make every rank start from rank 0's parameters and buffers.

    Parameters
    ----------
    modules:
        Modules whose parameters and buffers rank 0 sends to every rank.
    """
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(params, world_size: int) -> None:
    """All-reduce (sum) every gradient and divide by the number of ranks.

    Parameters
    ----------
    params:
        Parameters whose gradients are averaged over ranks.
    world_size:
        The number of ranks.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over all ranks.

    Parameters
    ----------
    value:
        A tensor (summed in place and returned).
    """
    dist.all_reduce(value)
    return value
