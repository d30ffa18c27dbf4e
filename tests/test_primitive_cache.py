"""semlib keeps oneDNN's compiled primitives (``semlib.PRIMITIVE_CACHE``): importing it, even after torch,
raises oneDNN's primitive cache above its default of 1,024, so a network called at many batch sizes
compiles each primitive once; a capacity already in the environment is kept. Checked by oneDNN's own
account of what it compiles (``ONEDNN_VERBOSE=profile_create``), in a subprocess per setting."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import semlib

SIZES = 1200  # batch sizes: a primitive each, more than oneDNN's default cache holds

CHILD = r"""
import os, sys
import torch
import semlib  # after torch, as a notebook may import them
conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
with torch.no_grad():
    for _ in range(2):  # the same sizes twice: the second sweep finds them cached, or not
        for b in range(2, 2 + int(sys.argv[1])):  # batch 1 does not go to oneDNN
            conv(torch.zeros(b, 3, 8, 8))
print("capacity", os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"])
"""


def compiled(capacity: str | None) -> tuple[int, str]:
    """Convolution primitives oneDNN compiled in the child, and the capacity the child saw."""
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    env.update(ONEDNN_VERBOSE="profile_create", OMP_NUM_THREADS="1")
    if capacity is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
    out = subprocess.run([sys.executable, "-c", CHILD, str(SIZES)], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    misses = sum("create:cache_miss" in line and ",convolution," in line for line in out.splitlines())
    return misses, out.strip().splitlines()[-1]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch was built without oneDNN")
def test_semlib_keeps_every_primitive_a_sweep_of_batch_sizes_compiles():
    default_misses, seen = compiled("1024")  # oneDNN's own default, set explicitly: semlib must keep it
    if default_misses == 0:
        pytest.skip("oneDNN computes none of these convolutions on this machine")
    assert seen == "capacity 1024"
    assert default_misses >= 2 * SIZES - 10, default_misses  # LRU: the second sweep recompiles everything
    misses, seen = compiled(None)
    assert seen == f"capacity {semlib.PRIMITIVE_CACHE}"
    assert SIZES - 10 <= misses <= SIZES + 10, misses  # each size once, the second sweep from the cache
