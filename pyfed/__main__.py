"""``python -m pyfed train|compare ...``."""

import sys

from pyfed.cli import main

sys.exit(main())
