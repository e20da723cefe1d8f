"""``python -m flowmonkey.cli``: the ``flowmonkey`` command."""

from flowmonkey.cli.commands import main

raise SystemExit(main())
