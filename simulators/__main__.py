"""`python -m simulators run ...`."""

from simulators.cli import main

raise SystemExit(main())
