"""Grafana dashboards, alert rules and the TraceQL catalog for ragotel services, as code.

Everything under ``generated/`` is written by this package and committed::

    python -m dashboards            # regenerate dashboards, rule files and the README's TraceQL table
    python -m dashboards --check    # exit 1 when anything committed differs from what the code builds

Metric names come from :mod:`ragotel.semconv` through :func:`ragotel.semconv.prometheus_name`, so a
renamed metric moves the dashboards and alerts with it.
"""
