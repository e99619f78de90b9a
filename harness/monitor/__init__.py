"""Monitoring under test: the stack's own Prometheus, exporters and Alertmanager, the
alert rules they evaluate (fixtures/alerts.yml), and alerts read back as SLO figures.

Place in the flow: the stack runs these processes (``--prometheus``); at the end of a run
the alerts that fired become per-episode figures (``alert_fired_s[Alert]``), judged as SLOs.
"""
