"""Data-parallel training on PyTorch's DDP computes tinygrad_cnn's gradient: two gloo
processes on localhost, each with half of a batch, end up holding the gradient of the mean
loss over the whole batch, as tinygrad_cnn computes it."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import models

torch = pytest.importorskip("torch")
from tinygrad_cnn.torch import to_torch  # noqa: E402

BATCH = 8


def batch_and_params():
    model, init_model = models.get_model("lenet5")
    params = {k: np.array(v.data, np.float64)
              for k, v in init_model(np.random.default_rng(0), image_size=16).items()}
    rng = np.random.default_rng(1)
    return model, params, rng.standard_normal((BATCH, 1, 16, 16)), rng.integers(0, 10, BATCH)


def replica(rank: int, world: int, port: int, folder: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    model, params, x, labels = batch_and_params()
    ddp = DistributedDataParallel(to_torch(model, params, x[:2]))
    half = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    loss = torch.nn.functional.cross_entropy(ddp(torch.from_numpy(x[half])),
                                             torch.from_numpy(labels[half]))
    loss.backward()   # all-reduce: the mean over the processes of their mean losses' grads
    grads = {name: p.grad.numpy() for name, p in ddp.module.named_parameters()}
    np.savez(f"{folder}/rank{rank}.npz", **grads)
    dist.destroy_process_group()


def test_ddp_on_two_processes_averages_to_the_whole_batch_gradient(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.start_processes(replica, args=(2, port, str(tmp_path)), nprocs=2,
                                          start_method="fork")
    model, params, x, labels = batch_and_params()
    _, grads = tg.value_and_grad(lambda p: F.cross_entropy(model(p, x), labels))(params)
    replicas = [np.load(tmp_path / f"rank{rank}.npz") for rank in (0, 1)]
    for key, grad in grads.items():
        np.testing.assert_array_equal(replicas[0][key], replicas[1][key], err_msg=key)
        np.testing.assert_allclose(replicas[0][key], grad.data, rtol=1e-9,
                                   atol=1e-12 * np.abs(grad.data).max(), err_msg=key)
