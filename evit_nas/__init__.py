"""The ``evit-nas`` command line (the top layer): one module per command group, each
registering its subcommands next to their handlers, and ``main`` that runs them.

The only package that imports every layer; nothing imports it. Handlers import torch,
optuna and the heavier layers when they run, not at start-up, so ``--help``, ``models``
and argument errors answer at once.
"""
