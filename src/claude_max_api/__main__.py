"""`python -m claude_max_api` runs the `claude-max-api` command line."""

import sys

from claude_max_api.cli import main

sys.exit(main())
