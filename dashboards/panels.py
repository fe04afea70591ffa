"""Panel, variable and dashboard builders with this project's defaults.

Every panel gets a unit (Grafana shows raw numbers otherwise) and a description; latency panels
ask Prometheus for exemplars, so a slow bucket links to the trace that landed in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, tempo, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig, VizLegendOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    GridPos,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from grafana_foundation_sdk.models.tempo import SearchTableType, TempoQueryType

from dashboards import promql as q

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
TEMPO = DataSourceRef(type_val="tempo", uid="${tempo}")
DEFAULT_PROMETHEUS_UID = "mimir"
DEFAULT_TEMPO_UID = "tempo"

# Units Grafana knows; custom ones use its "suffix:" form.
SECONDS = "s"
PERCENT_UNIT = "percentunit"
REQUESTS_PER_SECOND = "reqps"
PER_SECOND = "cps"
COUNT = "short"
USD = "currencyUSD"
USD_PER_HOUR = "suffix:USD/h"
TOKENS_PER_SECOND = "suffix:tok/s"


@dataclass(frozen=True)
class Query:
    """One PromQL target: the expression, its legend and whether exemplars are asked for."""

    expr: str
    legend: str = ""
    exemplar: bool = False
    instant: bool = False


def encode(board: db.Dashboard) -> str:
    """The dashboard as the JSON Grafana imports, stable across runs (sorted keys), panels numbered in
    order (links and alert annotations refer to panels by id)."""
    built = board.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return JSONEncoder(sort_keys=True, indent=2).encode(built) + "\n"


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    target = (prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(PROMETHEUS)
              .legend_format(query.legend or "__auto"))
    if query.exemplar:
        target = target.exemplar(True)
    if query.instant:
        target = target.instant()
    return target


def _refs() -> Iterable[str]:
    return (chr(ord("A") + i) for i in range(26))


def percentiles(histogram: q.Metric, selector: str, *labels: str) -> tuple[Query, ...]:
    """p50, p95 and p99 of a latency histogram, one line per value of ``labels``, with exemplars."""
    return tuple(Query(q.quantile(quant, histogram, selector, by=", ".join(labels)),
                       f"p{round(quant * 100)} {q.legend(*labels)}", exemplar=True) for quant in (0.5, 0.95, 0.99))


def series(title: str, unit: str, *queries: Query, description: str, width: int = 12, height: int = 8,
           stack: bool = False) -> timeseries.Panel:
    """A time series panel. Latency queries pass ``Query(..., exemplar=True)``."""
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(PROMETHEUS)
             .grid_pos(GridPos(h=height, w=width)).fill_opacity(10 if not stack else 40)
             .legend(VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(["mean", "max"])))
    if stack:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    for query, ref in zip(queries, _refs(), strict=False):
        panel = panel.with_target(_target(query, ref))
    return panel


def single(title: str, unit: str, query: Query, *, description: str, width: int = 4, decimals: int = 2) -> stat.Panel:
    """A stat panel: one current figure."""
    return (stat.Panel().title(title).description(description).unit(unit).decimals(decimals)
            .datasource(PROMETHEUS).grid_pos(GridPos(h=4, w=width)).with_target(_target(query, "A")))


def distribution(title: str, unit: str, query: Query, *, description: str, width: int = 12) -> heatmap.Panel:
    """A heatmap of histogram buckets (``sum by (le) (increase(..._bucket[...]))``)."""
    target = _target(query, "A").format(PromQueryFormat.HEATMAP).legend_format("{{le}}")
    return (heatmap.Panel().title(title).description(description).unit(unit).datasource(PROMETHEUS)
            .grid_pos(GridPos(h=8, w=width)).calculate(False).with_target(target))


def traces(title: str, traceql: str, *, description: str, width: int = 24) -> table.Panel:
    """A Tempo table panel running one TraceQL query."""
    target = (tempo.TempoQuery().query(traceql).query_type(TempoQueryType.TRACEQL.value)
              .table_type(SearchTableType.SPANS).limit(20).spss(5).ref_id("A").datasource(TEMPO))
    return (table.Panel().title(title).description(description).unit(COUNT).datasource(TEMPO)
            .grid_pos(GridPos(h=8, w=width)).with_target(target))


def row(title: str) -> db.Row:
    return db.Row(title)


# --- variables -----------------------------------------------------------------------------------
def label_values_variable(name: str, label: str, source_label: str, metric: str, *,
                          description: str) -> db.QueryVariable:
    """A multi-value variable over a label's values, whose "All" matches series without the label too."""
    return (db.QueryVariable(name).label(label).description(description).datasource(PROMETHEUS)
            .query(f"label_values({metric}, {source_label})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True).include_all(True).all_value(".*").sort(VariableSort.ALPHABETICAL_ASC)
            .current(VariableOption(selected=True, text="All", value="$__all")))


def datasource_variable(name: str, plugin: str, default_uid: str, label: str) -> db.DatasourceVariable:
    return (db.DatasourceVariable(name).label(label).type(plugin)
            .current(VariableOption(selected=True, text=default_uid, value=default_uid)))


def prometheus_variable() -> db.DatasourceVariable:
    return datasource_variable("datasource", "prometheus", DEFAULT_PROMETHEUS_UID, "Metrics")


def tempo_variable() -> db.DatasourceVariable:
    return datasource_variable("tempo", "tempo", DEFAULT_TEMPO_UID, "Traces")


# "All" is the regex .*, which also matches series without the label (a local Prometheus has no
# namespace), so every dashboard works on a laptop and in a cluster alike.
def namespace_variable(metric: str = "up") -> db.QueryVariable:
    return label_values_variable("namespace", "Namespace", "namespace", metric, description="Kubernetes namespace")


def service_variable() -> db.QueryVariable:
    return label_values_variable("service", "Service", "job", 'up{namespace=~"$namespace"}',
                         description="Scrape job: each service as your scrape config names it (a ServiceMonitor: "
                                     "the Service's name)")


def deployment_variable() -> db.QueryVariable:
    return label_values_variable("deployment", "Deployment", q.DEPLOYMENT, 'up{namespace=~"$namespace"}',
                                 description="Kubernetes Deployment (or Compose service) the series came from")


def placement_variables() -> list[db.QueryVariable]:
    """provider, cluster, region, environment: each offers the values left by the ones before it."""
    found: list[db.QueryVariable] = []
    before: list[str] = []
    descriptions = {"provider": "Cloud provider (cloud.provider)", "cluster": "Kubernetes cluster (k8s.cluster.name)",
                    "region": "Cloud region (cloud.region)",
                    "environment": "Deployment environment (deployment.environment.name)"}
    for variable, label in q.PLACEMENT:
        source = "target_info{" + ", ".join(before) + "}" if before else "target_info"
        found.append(label_values_variable(variable, variable.capitalize(), label, source,
                                           description=descriptions[variable]))
        before.append(f'{label}=~"${variable}"')
    return found


def app_variables(board: db.Dashboard, model_metric: q.Metric | None = None) -> db.Dashboard:
    """The app dashboards' variables: datasource, placement, namespace, deployment, service (and model).
    Cross-deployment comparison picks several providers or clusters; a per-deployment view picks one."""
    board = board.with_variable(prometheus_variable())
    for variable in placement_variables():
        board = board.with_variable(variable)
    board = (board.with_variable(namespace_variable()).with_variable(deployment_variable())
             .with_variable(service_variable()))
    return board.with_variable(model_variable(model_metric)) if model_metric else board


def model_variable(metric: q.Metric) -> db.QueryVariable:
    selector = q.series(metric, '{namespace=~"$namespace"}')
    return label_values_variable("model", "Model", "gen_ai_request_model", selector,
                         description="Model asked for (gen_ai.request.model; vLLM's model_name)")


def dashboard(uid: str, title: str, description: str, tags: Iterable[str]) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description).tags(["ragotel", *tags])
            .refresh("30s").time("now-1h", "now").timezone("browser").tooltip(DashboardCursorSync.CROSSHAIR))
