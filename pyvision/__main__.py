"""``python -m pyvision train --task qclip|emert|fer-gcd|myopia ...``."""

import sys

from pyvision.cli import main

sys.exit(main())
