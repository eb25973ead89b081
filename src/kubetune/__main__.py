"""``python -m kubetune``: the same as the ``kubetune`` command."""

import sys

from kubetune.cli.main import main

sys.exit(main())
