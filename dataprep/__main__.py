"""`python -m dataprep` is the same as the `dataprep` command."""

from dataprep.cli import main

main()
