"""``python -m ragotel.cli`` runs the ``ragotel`` command line."""

from ragotel.cli import main

raise SystemExit(main())
