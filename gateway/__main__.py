"""`python -m gateway` is the same as the `gateway` console command."""

from gateway.cli import main

main()
