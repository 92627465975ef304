"""``python -m broker.cli``: the ``mwl-broker`` command."""

import sys

from broker.cli.main import main

sys.exit(main())
