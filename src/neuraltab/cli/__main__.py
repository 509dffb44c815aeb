"""``python -m neuraltab.cli``: the ``neuraltab`` command."""

from . import run

run()
