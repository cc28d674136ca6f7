"""python -m srsfwd runs the command line."""

from srsfwd.cli import main

main()
