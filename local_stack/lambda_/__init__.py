"""The Lambda emulator: execution environments running the real awslambdaric.

Each environment is its own OS process, one request at a time, frozen between
invocations, reaped when idle, throttled at its concurrency limit, as AWS
describes it (Lambda Developer Guide, "Understanding the Lambda execution
environment lifecycle", "Lambda function scaling", "Lambda quotas"; each module
cites its own section, and ``docs/fidelity.md`` lists them). The API Gateway front and the Invoke
API sit on one small HTTP server (:mod:`.http_server`) in front of it.

Where things are:

* :mod:`.process` -- :class:`~.process.EmulatorProcess`, what the stack starts;
* :mod:`.server` -- the server process (``python -m connstorm.local_stack.lambda_``): one
  listener with the front, the Invoke API, ``/_connstorm/stats`` and
  ``/_connstorm/health``; :mod:`.http_server` -- that listener's HTTP/1.1
  (:mod:`.http_connection` one client connection, :mod:`.http_messages` the
  request and response types and their wire form);
* :mod:`.emulator` -- the core, :class:`~.emulator.Emulator` (the
  :class:`~.invocation.Invoker` the HTTP side calls): its state, start and stop,
  made of three mixins, one per kind of transition:
  :mod:`.scheduler` -- ``submit``, placing, throttling, dispatching and parking,
  and the one place an invocation gets its result and is recorded;
  :mod:`.lifecycle` -- environments from fork to death: Init and its timeout,
  the invocation timeout, suppressed init and re-init, kill, shutdown, the
  zygote's reports, the reaper;
  :mod:`.runtime_callbacks` -- what the runtimes' Runtime API calls do;
* :mod:`.function_pool`, :mod:`.environment` -- per-function state, one
  environment, one invocation;
* :mod:`.scaling` -- concurrency limits, scaling-rate buckets, throttle reasons;
* :mod:`.runtime_api` -- the Runtime API, one listener per environment;
* :mod:`.zygote`, :mod:`.zygote_client` -- the fork server environments come from;
* :mod:`.runtime_env` -- the variables, ids and headers a runtime gets;
  :mod:`.log_stream` -- the START/END/REPORT lines of the log stream;
* :mod:`.invocation_log` -- ``invocations.jsonl``; :mod:`.config` -- the config file.
"""
