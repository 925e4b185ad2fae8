"""Users sharded across the ranks of a ``torchrun`` launch, on PyTorch's
``DistributedDataParallel``.

Each user, with all of their comparisons, belongs to one rank (``assign_users``: users
dealt to ranks so that the ranks' comparison counts are balanced). A rank holds only its
own users' variational parameters and their optimiser state (``PALGuide.restricted``); the
global parameters (the mapping, PAL-B's prompt map, prototypes, loadings, sharpness, the
population prior, item effects) are replicated and kept identical by DDP, which averages
their gradients over the ranks in buckets overlapped with the backward pass. Nothing
per-user crosses the network during training, so the traffic per step does not grow with
the number of users (``benchmarks/distributed.py``).

Why the averaged gradient is the full ELBO's: the negative ELBO is
``G + sum_r L_r``, the global sites' terms ``G`` plus each rank's data terms ``L_r`` (its
users' prior and entropy terms and its answers). Rank ``r`` minimises
``W * L_r_hat + G`` (``ShardLoss``), with ``L_r_hat`` an unbiased minibatch estimate of
``L_r`` over its own comparisons; DDP's mean over the ``W`` ranks of these gradients is an
unbiased estimate of the full gradient for every global parameter. A rank's users appear
in no other rank's loss, so their full gradient is ``grad L_r``: the trainer divides their
gradients by ``W`` after the backward pass (``ShardLoss.scale_local_gradients``).

``batch_size`` is per rank: the global batch is ``world_size * batch_size``, and an
epoch has ``world_size`` times fewer steps. To match a single-process fit, divide the
batch size by the number of ranks. Validation (each rank scores its own users' held-out
comparisons; the log-losses are summed over ranks) and checkpoints (each rank writes its
own shard, ``shard_checkpoint``) work as in one process. At the end every rank gathers all
users' parameters (``gather_rows``), so every rank returns the same, whole fit.

CPU: backend ``gloo``; CUDA: ``nccl``, one GPU per rank (``LOCAL_RANK``). Launch::

    torchrun --nproc_per_node=4 my_fit.py                       # one machine, 4 GPUs
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 my_fit.py   # on each machine

where ``my_fit.py`` calls ``bayespal.fit(data, ..., distributed=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bayespal.data import PreferenceData
from bayespal.inference.elbo import site_elbo_loss
from bayespal.inference.guides import PALGuide
from bayespal.model import Batch, PALModel


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


def assign_users(counts: np.ndarray, world_size: int) -> np.ndarray:
    """The rank that owns each user ``(U,)``: users in decreasing order of their comparison
    counts are dealt to the ranks back and forth (0, 1, .., W-1, W-1, .., 0, ...), so the
    ranks' comparison counts differ by at most about the largest user's count.

    Parameters
    ----------
    counts:
        Comparisons per user ``(U,)``.
    world_size:
        The number of ranks.
    """
    counts = np.asarray(counts)
    if len(counts) < world_size:
        raise ValueError(f"distributed: got {len(counts)} users for {world_size} ranks; "
                         "expected at least one user per rank")
    order = np.argsort(-counts, kind="stable")
    turn = np.arange(len(counts)) % (2 * world_size)
    rank_of_turn = np.where(turn < world_size, turn, 2 * world_size - 1 - turn)
    owner = np.empty(len(counts), dtype=np.int64)
    owner[order] = rank_of_turn
    return owner


class ShardLoss(nn.Module):
    """This rank's training loss ``W * L_r_hat + G`` (see the module docstring) as a
    module, so ``DistributedDataParallel`` can wrap it: DDP synchronises the model's and
    the guide's global parameters and ignores the users' own (``local_names``).

    Parameters
    ----------
    model:
        The replicated model.
    guide:
        This rank's guide (its users only, ``PALGuide.restricted``).
    world_size:
        The number of ranks ``W``.
    n_comparisons:
        This rank's comparisons (the answers' plate of its share).
    num_particles:
        Draws averaged.
    """

    def __init__(self, model: PALModel, guide: PALGuide, world_size: int,
                 n_comparisons: int, num_particles: int = 1) -> None:
        super().__init__()
        self.model, self.guide = model, guide
        self.world_size, self.n_comparisons = world_size, n_comparisons
        self.num_particles = num_particles

    def local_names(self) -> list[str]:
        """The qualified names of this rank's users' parameters (not synchronised)."""
        local = self.guide.local_parameters()
        return [f"guide.{n}" for n, p in self.guide.named_parameters()
                if any(p is q for q in local)]

    def forward(self, batch: Batch) -> torch.Tensor:
        return site_elbo_loss(self.model, self.guide, batch, self.num_particles,
                              data_scale=float(self.world_size),
                              n_comparisons=self.n_comparisons)

    def scale_local_gradients(self) -> None:
        """Divide this rank's users' gradients by ``W``: their terms entered the loss ``W``
        times, and no other rank adds to them."""
        for p in self.guide.local_parameters():
            if p.grad is not None:
                p.grad.div_(self.world_size)


def wrap(loss: ShardLoss) -> DistributedDataParallel:
    """``loss`` under ``DistributedDataParallel``, its users' parameters and every global
    parameter that takes no gradient in this model ignored (MAP's unused scales: DDP would
    otherwise wait for their gradients every step). DDP broadcasts rank 0's parameters to
    every rank here.

    Parameters
    ----------
    loss:
        This rank's loss module.
    """
    ignored = set(loss.local_names())
    ignored |= {n for n, p in loss.named_parameters() if not p.requires_grad}
    ignored |= {f"guide.{n}" for n in loss.guide.unused_parameter_names()}
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(loss, sorted(ignored))
    # device_ids=None: the module sits on one device and the batches are already there
    return DistributedDataParallel(loss, forward_sync_buffers=False)


def take_share(data: PreferenceData, guide: PALGuide, rank: int, world_size: int
               ) -> tuple[np.ndarray, PreferenceData, PALGuide]:
    """This rank's share: ``(owner, shard, part)``, the rank of every user
    (``assign_users``), the comparisons of this rank's users (users kept in global order)
    and ``guide`` restricted to them.

    Parameters
    ----------
    data:
        All training comparisons.
    guide:
        The guide of every user.
    rank, world_size:
        This rank and the number of ranks.
    """
    owner = assign_users(data.comparisons_per_user(), world_size)
    shard = data.subset(owner[data.user] == rank)
    return owner, shard, guide.restricted(np.flatnonzero(owner == rank))


def gather_guide(part: PALGuide, owner: np.ndarray, rank: int) -> PALGuide:
    """The guide of every user, on every rank, from each rank's ``part`` (``take_share``).

    Parameters
    ----------
    part:
        This rank's guide (its users only).
    owner:
        The rank of each user.
    rank:
        This rank.
    """
    return part.with_users({
        name: gather_rows(p.detach(), owner, rank)
        for name, p in zip(part.local_names(), part.local_parameters(), strict=True)})


def gather_rows(local: torch.Tensor, owner: np.ndarray, rank: int) -> torch.Tensor:
    """Every user's rows ``(U, ...)`` on every rank, from each rank's rows of its own users
    (``local``, in the order of their global positions).

    Parameters
    ----------
    local:
        This rank's users' rows.
    owner:
        The rank of each user ``(U,)`` (``assign_users``).
    rank:
        This rank.
    """
    world_size = dist.get_world_size()
    sizes = np.bincount(owner, minlength=world_size)
    if len(local) != sizes[rank]:
        raise ValueError(f"local: got {len(local)} rows on rank {rank}; expected "
                         f"{sizes[rank]}, its users")
    most = int(sizes.max())
    padded = local.new_zeros((most, *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded.contiguous())
    full = local.new_empty((len(owner), *local.shape[1:]))
    for r in range(world_size):  # one copy per rank, not per user
        full[torch.as_tensor(np.flatnonzero(owner == r), device=local.device)] = (
            parts[r][: sizes[r]])
    return full


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over all ranks.

    Parameters
    ----------
    value:
        A tensor (summed in place and returned).
    """
    dist.all_reduce(value)
    return value


def barrier() -> None:
    """Wait for every rank."""
    dist.barrier()


def shard_checkpoint(path: Path, rank: int, world_size: int, epoch: int) -> Path:
    """The file of rank ``rank``'s shard of checkpoint ``path`` after ``epoch`` epochs:
    ``<stem>.rank<r>-of-<W>.epoch<e><suffix>``.

    Parameters
    ----------
    path:
        The checkpoint path given to ``fit``.
    rank, world_size:
        This rank and the number of ranks.
    epoch:
        Epochs done.
    """
    return path.with_name(f"{_shard_prefix(path, rank, world_size)}{epoch}{path.suffix}")


def _shard_prefix(path: Path, rank: int, world_size: int) -> str:
    """The shard files' names up to their epoch (the one place of the pattern)."""
    return f"{path.stem}.rank{rank}-of-{world_size}.epoch"


def shard_epochs(path: Path, rank: int, world_size: int) -> list[int]:
    """The epochs of rank ``rank``'s shard files of checkpoint ``path`` on disk, ascending.

    Parameters
    ----------
    path:
        The checkpoint path given to ``fit``.
    rank, world_size:
        This rank and the number of ranks.
    """
    prefix = _shard_prefix(path, rank, world_size)
    epochs = []
    for f in path.parent.glob(f"{prefix}*{path.suffix}"):
        tag = f.name[len(prefix): len(f.name) - len(path.suffix) or None]
        if tag.isdigit():
            epochs.append(int(tag))
    return sorted(epochs)


def resumable_epoch(path: Path, rank: int, world_size: int, device: torch.device) -> int:
    """The newest epoch whose shard every rank has on disk (0: none). A rank killed while
    writing leaves its previous shard (writes are atomic, and a rank deletes its older
    shards only after every rank has written the newer one), so this epoch always exists
    on every rank.

    Parameters
    ----------
    path:
        The checkpoint path given to ``fit``.
    rank, world_size:
        This rank and the number of ranks.
    device:
        Where the collective's tensor lives.
    """
    mine = shard_epochs(path, rank, world_size)
    newest = torch.tensor(mine[-1] if mine else 0, device=device)
    dist.all_reduce(newest, op=dist.ReduceOp.MIN)
    epoch = int(newest)
    if epoch and epoch not in mine:
        raise FileNotFoundError(
            f"checkpoint {str(shard_checkpoint(path, rank, world_size, epoch))!r}: got none; "
            f"expected rank {rank}'s shard after epoch {epoch}, which every other rank has")
    return epoch


def prune_shards(path: Path, rank: int, world_size: int, keep: int) -> None:
    """After every rank has written its shard of epoch ``keep`` (the caller holds a
    barrier), delete this rank's other shard files.

    Parameters
    ----------
    path:
        The checkpoint path given to ``fit``.
    rank, world_size:
        This rank and the number of ranks.
    keep:
        The epoch kept.
    """
    for e in shard_epochs(path, rank, world_size):
        if e != keep:
            shard_checkpoint(path, rank, world_size, e).unlink(missing_ok=True)
