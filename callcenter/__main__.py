"""``python -m callcenter``: the same as the ``cti`` command."""

import sys

from callcenter.cli import main

sys.exit(main())
