"""``python -m mesynth.cli <command>``: the ``mesynth`` command, runnable as a module (e.g. under
``torchrun -m mesynth.cli generate ...``, which shards the clips over the processes)."""

import sys

from mesynth.cli.main import main

sys.exit(main())
