"""Other libraries' optimisers behind the strategy interface: NNI's tuners and Optuna's samplers.

:mod:`~tocsr_nas.strategies.adapters.tuner` holds what they share (categorical encoding, population
options, the constraint penalty); each library has one module that registers its strategies.
"""
