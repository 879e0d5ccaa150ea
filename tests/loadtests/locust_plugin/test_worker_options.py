"""A Locust worker with connstorm's plugin parses Locust's default options once.

For every option a spawn message carries, Locust 2.x's worker calls
``argument_parser.default_args_dict()``, which builds and parses the whole default
parser again (``WorkerRunner.handle_message``). With connstorm's options that is some
70 parses per message: on a busy machine the worker sent no heartbeat for over three
seconds, the master declared both workers missing, and ``connstorm run --processes 2``
ended with no request. Run in a subprocess: importing Locust patches the standard
library with gevent.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json
import locust
from locust import argument_parser
import connstorm.loadtests.locust_plugin.plugin  # noqa: F401  - what every Locust process loads

parses = []
setup = argument_parser.setup_parser_arguments
argument_parser.setup_parser_arguments = lambda *a, **k: (parses.append(1), setup(*a, **k))[1]
first = argument_parser.default_args_dict()
first["host"] = "changed by a caller"
for _ in range(70):  # as many options as a spawn message carries
    again = argument_parser.default_args_dict()
print(json.dumps({"parses": len(parses), "host": again["host"], "keys": len(again)}))
"""


def test_the_worker_parses_locusts_default_options_once_per_process() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["parses"] <= 1
    # every caller still gets the defaults, whatever an earlier one did to its copy
    assert result["host"] != "changed by a caller"
    assert result["keys"] > 20
