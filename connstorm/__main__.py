"""Allow ``python -m connstorm``."""

from connstorm.cli.main import main

raise SystemExit(main())
