"""`python -m bot` is the same as the `duban` console script."""

from bot.cli import main

raise SystemExit(main())
