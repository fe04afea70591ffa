"""``python -m ragotel`` runs the ``ragotel`` command line."""

from ragotel.cli import main

raise SystemExit(main())
