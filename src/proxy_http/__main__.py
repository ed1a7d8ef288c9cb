"""`python -m proxy_http` keeps working: it runs the `claude-max-api` command line.

The command line lives in the application package now; this entry point is a
public name users type, so it stays as a thin alias.
"""

import sys

from claude_max_api.cli import main

sys.exit(main())
