"""``python -m connstorm.local_stack.lambda_``: the emulator server (:mod:`.server`)."""

import sys

from connstorm.local_stack.lambda_.server import main

sys.exit(main())
