"""``python -m recognizer.cli <command>``: the ``mer`` command, runnable as a module (e.g. under
``torchrun -m recognizer.cli train ...``, which runs one DDP process per GPU)."""

import sys

from recognizer.cli.commands import main

sys.exit(main())
