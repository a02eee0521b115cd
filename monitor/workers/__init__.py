"""Server mode: `monitor run` schedules and enqueues jobs on a broker, `monitor worker` processes run them.

Built on Dramatiq with Redis (docs/deploy.md says why). Small modules:

* :mod:`.broker` — the Redis broker for ``[workers] broker`` (password from ``$MONITOR_BROKER_PASSWORD``).
* :mod:`.actors` — the jobs: crawl one source, classify, shifts + queue (``process``), alerts.
* :mod:`.enqueue` — what the scheduler's jobs send instead of running the work themselves.
* :mod:`.locks` — per-source crawl and processing locks in the store's ``leases`` table.
* :mod:`.holders` — whether a claim's holder process is gone.
* :mod:`.run` — the worker process (``--processes N`` forks N of them and restarts one that dies).

Without ``[workers] broker`` none of this is imported: `monitor run` runs every job itself, as before.
"""
