"""``python -m ensemble_bt.cli``: the console script ``ensemble-bt``."""

from ensemble_bt.cli import main

raise SystemExit(main())
