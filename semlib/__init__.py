"""semlib: stochastic ensembles with variable attributes (SEM) on CIFAR-10, reproduced."""
import os as _os

__version__ = "0.1.0"

# oneDNN keeps 1,024 compiled primitives by default (a primitive: one layer at one batch size, layout and
# pass). A SEM's 68 sub-models called on a varying number of rows need about 10,000 within a few attack
# steps, so the default cache evicts and recompiles all the time: x1.20-1.33 slower (issue 17,
# benchmarks/bench_primitive_cache.py). A kept primitive costs 16-33 KB, so 32,768 bound the cache at
# about 1.1 GB per process. oneDNN reads the setting when it compiles its first primitive, so it is set
# here, before any network runs; a value already in the environment is kept.
PRIMITIVE_CACHE = 32768
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE))
