"""`playworld ...` with the tiny test family registered, for tests that need a separate process
(torchrun, signals): python cli_with_tiny.py train --model tiny-test ..."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import tiny_family  # noqa: E402,F401

from playworld.cli import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
