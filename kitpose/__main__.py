"""``python -m kitpose`` is the ``kitpose`` command."""
import sys

from kitpose.cli import main

sys.exit(main())
