"""``python -m flywheel_assets.cli``: the same as the ``flywheel`` command."""

from flywheel_assets.cli.main import main

raise SystemExit(main())
