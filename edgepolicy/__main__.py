"""Allow `python -m edgepolicy`."""

import sys

from edgepolicy.cli import main

sys.exit(main())
