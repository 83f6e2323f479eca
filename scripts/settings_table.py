"""Print docs/DEPLOY.md's table of environment variables, from fmnist.settings.VARS.

Usage: python scripts/settings_table.py      (scripts/docs_check.py compares it with DEPLOY.md)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fmnist.settings import table

if __name__ == "__main__":
    print(table())
