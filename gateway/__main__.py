"""``python -m gateway`` is the ``doelpoort`` command."""

from gateway._cli import main

main()
