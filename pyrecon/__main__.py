"""``python -m pyrecon train|fit|recon|list ...`` (see pyrecon.cli)."""

import sys

from pyrecon.cli import main

sys.exit(main())
