"""Allow ``python -m connstorm``."""

from connstorm.cli import main

raise SystemExit(main())
