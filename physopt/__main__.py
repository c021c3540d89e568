"""``python -m physopt ...``: the ``physopt`` command without the console script (e.g. from a source checkout)."""
import sys

from physopt.cli import main

sys.exit(main())
