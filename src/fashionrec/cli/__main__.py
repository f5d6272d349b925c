"""`python -m fashionrec.cli ...`: the same command as the `fashionrec` script (the tests run it this way)."""

import sys

from fashionrec.cli import main

sys.exit(main())
