"""`python -m atento ...` (also what torchrun starts) is the `atento` command."""

import sys

from atento.cli.main import main

sys.exit(main())
