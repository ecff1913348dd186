"""`python -m simulators run|backfill|verify ...`."""

from simulators.cli import main

raise SystemExit(main())
