"""`python -m bot` is the same as the `duban` console script."""

from bot.cli import main

if __name__ == "__main__":  # not when a child process of multiprocessing imports it
    raise SystemExit(main())
