"""Grafana dashboards, alert rules and the TraceQL catalog for ragotel services, as code.

Everything under ``generated/`` is written by this package and committed::

    python -m dashboards            # regenerate dashboards and rule files (and deploy/'s copies)
    python -m dashboards --check    # exit 1 when anything committed differs from what the code builds

The documentation's tables of what they hold (docs/dashboards.md: panels, alerts, what a panel needs, the
TraceQL catalog) are ``python -m docsgen``'s, built from the same code.

Metric names come from :mod:`ragotel.semconv` through :func:`ragotel.semconv.prometheus_name`, so a
renamed metric moves the dashboards and alerts with it.
"""
