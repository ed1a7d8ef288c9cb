"""`python -m claude_max_api.docgen` (`make docs`): prints docs/configuration.md.

A module of its own, because the package imports `settings` on import, and running
an imported module with `-m` makes Python warn.
"""

from __future__ import annotations

import sys

from claude_max_api.settings import markdown

if __name__ == "__main__":
    sys.stdout.write(markdown())
