"""``python -m local_stack.lambda_``: the emulator server (:mod:`local_stack.lambda_.server`)."""

import sys

from local_stack.lambda_.server import main

sys.exit(main())
