"""Two-process data-parallel HAT (gloo, CPU) against a single-process run.

Runs ``examples/distributed_training.py`` under ``torchrun --nproc_per_node=2``
and, at the same time, in one process (this one), both with full-batch training:
each of the two processes gets half of every experience, so the averaged gradient
is the single-process full-batch gradient and the two runs must agree up to
floating-point rounding, whatever order the samplers draw the data in.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "distributed_training.py"
EXPERIENCES = 3
ARGS = ["--strategy", "hat", "--experiences", str(EXPERIENCES), "--epochs", "3",
        "--global-batch", "0", "--hidden", "32", "32", "--device", "cpu"]  # fmt: skip
#: ``torchrun`` (its own ``main``: options, elastic agent, environment of each worker) in a
#: fresh interpreter that imports the example's modules first; its workers are forked from it
#: (``--start-method fork``) and run the example as ``__main__`` (``--run-path``), so torch and
#: Avalanche are imported once, not once per process. Once torchrun has returned, the
#: launcher skips the interpreter's teardown (seconds with torch loaded).
LAUNCH = """
import os, runpy, sys
runpy.run_path(sys.argv[1], run_name="preload")  # the example's imports, not its main
from torch.distributed.run import main
main(sys.argv[2:])
sys.stdout.flush()
os._exit(0)
"""


def _skip_reason() -> str | None:
    import torch.distributed as dist

    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "the gloo backend of torch.distributed is not available"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(out: Path, rank: int, exp: int) -> dict:
    return torch.load(out / f"rank{rank}_exp{exp}.pt", map_location="cpu")


def _single_process_run(out: Path) -> None:
    """The example's single-process run, in this process (its imports are paid already); the
    global state Avalanche's ``DistributedHelper`` keeps is put back afterwards."""
    import runpy

    from avalanche.distributed import DistributedHelper

    main = runpy.run_path(str(EXAMPLE), run_name="distributed_training")["main"]
    helper = dict(vars(DistributedHelper))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("LOCAL_RANK", raising=False)  # one process, whoever launched pytest
            assert main([*ARGS, "--out", str(out)]) == 0
    finally:
        vars(DistributedHelper).clear()
        vars(DistributedHelper).update(helper)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("LOCAL_RANK", None)
    fork = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    dist_cmd = [sys.executable, "-c", LAUNCH, str(EXAMPLE), "--nproc_per_node=2",
                "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
                f"--start-method={fork}", "--run-path",
                str(EXAMPLE), *ARGS, "--out", str(tmp / "dist")]  # fmt: skip
    proc = subprocess.Popen(
        dist_cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=hasattr(os, "killpg"),
    )  # fmt: skip
    try:
        _single_process_run(tmp / "single")  # while the process group starts
        # A guard against a hung process group, not a timing claim: generous for a loaded CI
        # machine.
        log = proc.communicate(timeout=300)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its workers
            else:
                proc.kill()
            proc.wait()
    assert proc.returncode == 0, log[-4000:]
    return tmp / "dist", tmp / "single"


def test_processes_end_bitwise_identical(runs):
    dist, _ = runs
    for exp in range(EXPERIENCES):
        a, b = _load(dist, 0, exp), _load(dist, 1, exp)
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"ranks differ after experience {exp}: {different}"
    keys = set(a)
    for layer in (0, 1):  # embeddings, stored, cumulative and summative masks travel too
        assert {f"masks.{layer}.cumulative", f"masks.{layer}.summative"} <= keys
        assert {f"masks.{layer}.mask_T{t}" for t in range(EXPERIENCES)} <= keys
        assert {f"masks.{layer}.embeddings.{t}" for t in range(EXPERIENCES)} <= keys


def test_protected_parameters_unchanged_by_later_tasks(runs):
    dist, _ = runs
    first = _load(dist, 0, 0)
    used0 = first["masks.0.cumulative"].bool()  # M^{<1} of each layer
    used1 = first["masks.1.cumulative"].bool()
    assert used0.any() and used1.any()
    protected = {
        "layers.0.weight": used0[:, None].expand_as(first["layers.0.weight"]),
        "layers.0.bias": used0,
        "layers.1.weight": used1[:, None] & used0[None, :],
        "layers.1.bias": used1,
    }
    for exp in range(1, EXPERIENCES):
        later = _load(dist, 0, exp)
        for name, mask in protected.items():
            assert torch.equal(later[name][mask], first[name][mask]), (name, exp)
            assert not torch.equal(later[name], first[name]), f"{name} never trained ({exp})"
        for key in ("masks.0.mask_T0", "masks.1.mask_T0", "masks.0.embeddings.0"):
            assert torch.equal(later[key], first[key]), (key, exp)


def test_matches_single_process_full_batch(runs):
    dist, single = runs
    for exp in range(EXPERIENCES):
        a, s = _load(dist, 0, exp), _load(single, 0, exp)
        assert a.keys() == s.keys()
        for k in a:
            if "mask_T" in k or "cumulative" in k or "summative" in k:
                assert torch.equal(a[k], s[k]), (k, exp)  # the same binary masks
            else:
                torch.testing.assert_close(a[k], s[k], rtol=1e-5, atol=1e-5, msg=k)
