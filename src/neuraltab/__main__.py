"""``python -m neuraltab``: the ``neuraltab`` command, also as ``torchrun -m neuraltab train ...`` runs it."""

from .cli import run

run()
