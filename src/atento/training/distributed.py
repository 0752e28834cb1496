"""Training on several processes with PyTorch's own engine (torchrun, DistributedDataParallel).

    torchrun --nproc_per_node 2 -m atento train CONFIG.yaml ...      (or atento train ... --nproc 2)

`World.from_env()` reads what torchrun (or any launcher) sets: RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE. `init(world, device, timeout)` starts the process group: gloo on CPU, nccl on
CUDA (one device per rank). A process started without those variables is a world of one, and
nothing here touches torch.distributed.

Every rank computes the same batch plan from (seed, epoch) and takes its share with `deal`:
the plan is trimmed to a multiple of world_size * accum_steps (the few batches dropped rotate
from epoch to epoch), and optimiser step k of rank r reads batches
(k * A + a) * W + r for a = 0..A-1: disjoint across ranks, together the whole trimmed plan,
and the same number of steps on every rank, so no rank waits for a batch that never comes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from atento.errors import AtentoError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a world of one by default)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @classmethod
    def from_env(cls) -> World:
        env = os.environ
        if "WORLD_SIZE" not in env or "RANK" not in env:
            return cls()
        try:
            size, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
            local_rank = int(env.get("LOCAL_RANK", rank))
            local_size = int(env.get("LOCAL_WORLD_SIZE", size))
        except ValueError:
            raise AtentoError("RANK / WORLD_SIZE / LOCAL_RANK must be integers") from None
        return cls(rank, size, local_rank, local_size)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that validates and writes the run directory."""
        return self.rank == 0

    # ------------------------------------------------------------ collectives (no-ops alone)
    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over all ranks (float64, exact for counts below 2**53)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is True on one (a stop decision all ranks share)."""
        return self.sum([float(flag)], device)[0] > 0 if self.distributed else flag

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (picklable objects)."""
        if not self.distributed:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


def init(world: World, device: torch.device, timeout_s: float) -> None:
    """Start the process group for `world` (gloo on CPU, nccl on CUDA): every collective then
    fails after `timeout_s` instead of hanging when another rank died or hangs."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(
        backend, timeout=datetime.timedelta(seconds=timeout_s), rank=world.rank,
        world_size=world.size, **kwargs,
    )  # fmt: skip


def shutdown(*, wait: bool = True) -> None:
    """End the process group (after a barrier, so that no rank tears down the connections while
    another still uses them; `wait=False` after a failure)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """End a distributed rank's process now, without tearing the process group down.

    gloo's C++ destructors can abort a finished rank ("terminate called without an active
    exception": a still-joinable std::thread destroyed while the group is torn down, at
    destroy_process_group or at interpreter exit), turning a good run into exit status -6.
    Call this after a barrier (every rank is done with collectives, rank 0 has written its
    checkpoint atomically) or after a failure: output is flushed, then os._exit skips the
    teardown. The command line ends its distributed runs this way; library callers use
    `shutdown()`.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def deal(
    plan: list[list[int]], *, epoch: int, world_size: int, accum_steps: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Trim an epoch's plan to a multiple of world_size * accum_steps.

    Returns (kept, dropped): `kept` in plan order after a rotation by epoch, so that the dropped
    batches (fewer than world_size * accum_steps) differ from epoch to epoch. Global batch j of
    `kept` belongs to rank j % world_size; optimiser step k is batches
    k * W * A .. (k + 1) * W * A - 1.
    """
    group = world_size * accum_steps
    n_drop = len(plan) % group
    if n_drop == 0:
        return plan, []
    shift = (epoch * n_drop) % len(plan)
    rotated = plan[shift:] + plan[:shift]
    return rotated[: len(plan) - n_drop], rotated[len(plan) - n_drop :]


def rank_batches(
    kept: list[list[int]], step_in_epoch: int, *, rank: int, world_size: int, accum_steps: int
) -> list[list[int]]:
    """The micro-batches of optimiser step `step_in_epoch` that rank `rank` takes."""
    first = step_in_epoch * world_size * accum_steps
    return [kept[first + a * world_size + rank] for a in range(accum_steps)]
