"""``python -m callcenter``: the same as the ``cti`` command."""

import sys

try:
    from callcenter.cli import main
except KeyboardInterrupt:  # Ctrl-C while loading: quiet, as in main()
    sys.exit(130)

sys.exit(main())
