"""``python -m npucheck``: the command line (how fleet ranks start their measuring process)."""

from npucheck.cli import main

main()
