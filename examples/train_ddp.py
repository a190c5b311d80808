"""Train LeNet-5 data-parallel with PyTorch's DistributedDataParallel, then bring the weights
back and measure them with tinygrad_cnn.

    python examples/train_ddp.py --nproc 2                                   # digits
    python examples/train_ddp.py --nproc 2 --data-root ../shared/data/mnist  # MNIST t10k
    torchrun --nproc_per_node 2 examples/train_ddp.py --data-root ../shared/data/mnist

The model is written here as a function of a params dict (the zoo's `lenet5`); `to_torch`
turns it into a torch.fx module, DDP trains it on the CPU's gloo backend (each process
a shard of every epoch, gradients averaged by all-reduce), and `from_torch` gives the
trained params back to tinygrad_cnn, which computes the test accuracy. No distribution
code of our own: all of it is PyTorch's.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tinygrad_cnn import models, train
from tinygrad_cnn.torch import from_torch, to_torch


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes (without torchrun)")
    parser.add_argument("--data-root", help="folder with MNIST's t10k files (default: the "
                        "8x8 digits)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 8 MNIST, 30 digits")
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def shard(n: int, rank: int, world: int, epoch: int, seed: int) -> np.ndarray:
    """This process's examples of one epoch: a permutation every process agrees on, dealt
    round-robin (as DistributedSampler deals it), cut to equal lengths."""
    order = np.random.default_rng(seed + epoch).permutation(n)
    return order[rank:n - n % world:world]


def worker(rank: int, world: int, args: argparse.Namespace) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    dataset = train.load_dataset("mnist-t10k" if args.data_root else "digits", args.seed,
                                 args.data_root)
    epochs = args.epochs or (8 if args.data_root else 30)
    model, init_model = models.get_model("lenet5")
    params = init_model(np.random.default_rng(args.seed), image_size=dataset.image_size)
    module = to_torch(model, params, dataset.x_train[:2], train=True)
    ddp = DistributedDataParallel(module)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    images, labels = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        mine, losses = shard(len(images), rank, world, epoch, args.seed), []
        for first in range(0, len(mine), args.batch_size):
            batch = torch.from_numpy(mine[first:first + args.batch_size])
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(images[batch]), labels[batch])
            loss.backward()                  # DDP averages the gradients of all processes
            optimizer.step()
            losses.append(loss.item())
        if rank == 0:
            print(f"epoch {epoch:>2}  train loss {np.mean(losses):.4f}  "
                  f"{time.perf_counter() - start:6.1f} s", flush=True)
    if rank == 0:
        trained = from_torch(module)         # numpy params, the same keys as `params`
        loss, accuracy = train.evaluate(model, trained, dataset.x_test, dataset.y_test)
        print(f"{world} process(es), {epochs} epochs in {time.perf_counter() - start:.1f} s; "
              f"tinygrad_cnn on the trained params: test loss {loss:.4f}, test accuracy "
              f"{accuracy:.4f} on {len(dataset.x_test)} images", flush=True)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    args = parse()
    if "RANK" in os.environ:                 # started by torchrun
        worker(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args)
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    torch.multiprocessing.spawn(worker, args=(args.nproc, args), nprocs=args.nproc)


if __name__ == "__main__":
    main()
