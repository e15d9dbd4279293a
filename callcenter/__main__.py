"""``python -m cti``: the same as the ``cti`` command."""

import sys

from cti.cli import main

sys.exit(main())
