"""`python -m proxy_http` runs the `claude-max-api` command line."""

import sys

from proxy_http.cli import main

sys.exit(main())
