"""``connstorm live``: load the deployed stack (deploy/template.yaml) and read CloudWatch.

The API URL, function, database instance and proxy come from the
CloudFormation stack's outputs (``ApiUrl``, ``FunctionName``, ``DbInstanceId``,
``ProxyName``, ``Region``), or from explicit options. Credentials and endpoints
come from boto3's standard chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ...);
connstorm never writes them anywhere.

    connstorm live --stack-name connstorm --region eu-west-1 direct-small -u 50 -t 2m
    connstorm live --stack-name connstorm --region eu-west-1 --dry-run
    connstorm live --api-url https://abc.execute-api.eu-west-1.amazonaws.com \\
        --function connstorm-fn --db-instance connstorm-db --proxy connstorm-proxy \\
        --region eu-west-1

CloudWatch's data points are one minute wide and appear one to three minutes
late: the run waits (bounded, ``--metrics-wait``) for the window's last minute
after the load before it writes the run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from connstorm.loadtests.orchestrator.run_arguments import (
    add_common_arguments,
    duration_s,
    http_url,
    options_from_args,
)


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("live", help="load the deployed AWS stack and read CloudWatch into "
                                    "the report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--stack-name", default=None,
                   help="CloudFormation stack of deploy/template.yaml (default: [live] "
                        "stack_name)")
    p.add_argument("--region", default=None,
                   help="the stack's region (default: [live] region, else the boto3 chain's)")
    p.add_argument("--api-url", type=http_url, default=None, help="API base URL (wins over "
                   "the ApiUrl output)")
    p.add_argument("--function", dest="function_name", default=None,
                   help="Lambda function name (wins over FunctionName)")
    p.add_argument("--db-instance", default=None,
                   help="RDS instance identifier (wins over DbInstanceId)")
    p.add_argument("--proxy", default=None, help="RDS Proxy name (wins over ProxyName)")
    p.add_argument("--metrics-wait", type=duration_s, default=None,
                   help="after the load, wait at most this long for CloudWatch's last data "
                        "points (default: [live] wait_for_metrics_s)")
    p.add_argument("--poll-interval", type=duration_s, default=None,
                   help="read CloudWatch this often during the load (default: [live] "
                        "poll_interval_s, 30 s)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the URL, the load and the metrics it would read; send nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resolve the stack, then the dry run or the live run."""
    from connstorm.console import output_console
    from connstorm.loadtests.orchestrator.live_plan import describe_plan
    from connstorm.loadtests.orchestrator.live_run import LiveRun, LiveSettings, live_variant_names
    from connstorm.loadtests.orchestrator.live_target import check_api_answers, resolve, session
    from connstorm.loadtests.orchestrator.locustfiles import ready_source

    opts = options_from_args(args, headless=True)
    ready_source(opts.scenario, opts.locustfile)  # your locustfile, before AWS is asked
    live = opts.scenario.live
    sess = session(args.region or live.region)
    # --target-url (shared with connstorm run) means the same as --api-url here.
    target = resolve(sess, stack_name=args.stack_name or live.stack_name,
                     api_url=args.api_url or args.target_url,
                     function_name=args.function_name, db_instance_id=args.db_instance,
                     proxy_name=args.proxy)
    settings = LiveSettings(period_s=live.metrics_period_s,
                            wait_s=(args.metrics_wait if args.metrics_wait is not None
                                    else live.wait_for_metrics_s),
                            poll_s=(args.poll_interval if args.poll_interval is not None
                                    else live.poll_interval_s))
    if opts.baseline is not None:  # before the dry run too: a plan that could not be judged
        opts.baseline.require_variants(live_variant_names(opts.scenario, target))
    console = output_console()
    if args.dry_run:
        console.print(describe_plan(opts, target, settings), highlight=False, soft_wrap=True)
        return 0
    check_api_answers(target.api_url)
    opts = dataclasses.replace(opts, target_url=target.api_url)
    LiveRun(opts, target, sess, settings, console).execute()
    return 0
