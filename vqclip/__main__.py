"""`python -m vqclip` is the same as the `vqclip` command."""

import sys

from vqclip.cli import main

sys.exit(main())
