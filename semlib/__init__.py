"""semlib: stochastic ensembles with variable attributes (SEM) on CIFAR-10, reproduced."""
__version__ = "0.1.0"
