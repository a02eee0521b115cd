"""Alerts: tell people now what would otherwise wait for tomorrow's digest (docs/alerts.md).

* ``detect.py`` — what deserves an alert right now: a new urgent queue item, a new incident,
  today's complaint spike for a brand, an open item that has just passed its SLA.
* ``render.py`` — the words: plain text, HTML email (escaped), webhook JSON (inert).
* ``deliver.py`` — the channels: email through the digest's SMTP code, and a webhook POST.
* ``ledger.py`` — the ``alerts_sent`` table: an alert is delivered once per channel, ever.
* ``run.py`` — one pass: detect, skip what was sent, deliver, record (``run_alerts``).
"""
