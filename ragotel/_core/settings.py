"""Every setting ``ragotel.configure`` takes, in one table, resolved and validated in one place.

Each ``Setting`` names the ``configure()`` argument, the environment variable that wins over it, the
default, and how a text value is parsed and checked. ``resolve`` turns arguments plus the environment
into plain values and a list of ``Problem`` (a setting whose value cannot be used: it is dropped and
named in one warning), before any provider is installed. Nothing here raises on bad input.

Settings the SDK's own classes read from the environment (OTLP endpoint per signal, headers, timeout,
compression, certificates; ``OTEL_BSP_*``; the sampler; ``OTEL_RESOURCE_ATTRIBUTES``) are left to them; the
table names them only so the precedence is written down once (``SDK_READS``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
PROTOCOLS = ("http/protobuf", "grpc")
SIGNALS = ("traces", "metrics", "logs")
EXPORTERS: Mapping[str, frozenset[str]] = {
    "traces": frozenset({"otlp", "console", "none"}),
    "metrics": frozenset({"otlp", "console", "prometheus", "none"}),
    "logs": frozenset({"otlp", "console", "none"}),
}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError("expected true or false")


def _port(value: object) -> int:
    """A port number, 0 to 65535."""
    port = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    if not 0 <= port <= 65535:
        raise ValueError("expected a port number from 0 to 65535")
    return port


def _positive_int(value: object) -> int:
    """A whole number above 0."""
    number = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    if number <= 0:
        raise ValueError("expected a whole number above 0")
    return number


def _float(value: object) -> float:
    """A number."""
    if isinstance(value, bool):
        raise ValueError("expected a number")
    return float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)


def _seconds(value: object) -> float:
    """A number of seconds, 0 or more."""
    seconds = _float(value)
    if not 0 <= seconds < float("inf"):
        raise ValueError("expected a number of seconds, 0 or more")
    return seconds


def _protocol(value: object) -> str:
    """``http/protobuf`` or ``grpc``."""
    text = str(value).strip().lower()
    if text not in PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(PROTOCOLS)}")
    return text


def _text(value: object) -> str:
    """Text."""
    return str(value).strip()


def _flag(value: object) -> bool:
    """``true`` or ``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    return value if isinstance(value, bool) else _bool(str(value))


ServiceStep = tuple[str, str, str]
"""``(url_prefix, step kind, step name)``: requests to a URL under the prefix are that step."""
SERVICE_STEP_KINDS: Final = ("retrieval", "embedding", "rerank", "prompt", "generation")


def _service_steps(value: object) -> tuple[ServiceStep, ...]:
    """``url_prefix=kind[:name]`` pairs, comma-separated (or a mapping from code); the name defaults to the host."""
    pairs = value.items() if isinstance(value, Mapping) else (
        item.rsplit("=", 1) for item in str(value).split(",") if item.strip())
    found = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError("expected url_prefix=kind[:name]")
        prefix, spec = (str(part).strip() for part in pair)
        kind, _, name = spec.partition(":")
        url = urlsplit(prefix)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{prefix!r} is not an http(s) URL")
        if kind not in SERVICE_STEP_KINDS:
            raise ValueError(f"{kind!r} is not one of {', '.join(SERVICE_STEP_KINDS)}")
        found.append((prefix, kind, name or url.hostname))
    return tuple(found)


def _names(value: object) -> frozenset[str]:
    """Names, comma-separated."""
    return frozenset(name.strip() for name in str(value).split(",") if name.strip())


GENAI_LATEST: Final = "gen_ai_latest_experimental"
CONTENT_MODES: Final = ("no_content", "span_only", "event_only", "span_and_event")
"""``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` values under ``gen_ai_latest_experimental``."""


class PartlyUsable(ValueError):
    """A value usable without some of its parts: ``kept`` is what the setting becomes, ``reason`` names the rest."""

    def __init__(self, kept: Any, reason: str, consequence: str) -> None:
        super().__init__(reason)
        self.kept = kept
        self.consequence = consequence


def _opt_in(value: object) -> bool:
    """A comma-separated list: ``gen_ai_latest_experimental`` in it asks for the latest GenAI conventions.

    The list is shared with other conventions' categories (``http``, ``database``, their ``/dup`` forms, ...):
    those are not ragotel's to judge. An entry that names GenAI but is no opt-in ragotel knows (a typo, an
    opt-in of a later release) is ignored with a warning, since it silently keeps the default names."""
    if isinstance(value, bool):
        return value
    parts = {part.strip().lower() for part in str(value).split(",") if part.strip()}
    latest = GENAI_LATEST in parts
    unknown = sorted(p for p in parts - {GENAI_LATEST} if p.replace("-", "_").startswith(("gen_ai", "genai")))
    if unknown:
        raise PartlyUsable(latest, f"unknown GenAI opt-in {', '.join(unknown)} ignored (known: {GENAI_LATEST})",
                           f"the {'latest' if latest else 'default'} GenAI conventions are used")
    return latest


def _content_mode(value: object) -> str:
    """``true`` or ``false``; under ``gen_ai_latest_experimental`` ``SPAN_ONLY``, ``EVENT_ONLY``, ``SPAN_AND_EVENT``
    or ``NO_CONTENT``."""
    text = str(value).strip().lower()
    if text not in (*CONTENT_MODES, "true", "false"):
        raise ValueError(f"expected true or false, or under {GENAI_LATEST} one of "
                         f"{', '.join(m.upper() for m in CONTENT_MODES)}")
    return text


@dataclass(frozen=True, slots=True)
class Setting:
    """One row: argument name, environment variable (wins over the argument), default, parser/validator.

    docs/reference/settings.md is generated from the rows: ``doc`` says what the setting does (Markdown links
    relative to docs/), the first line of ``parse``'s docstring what it accepts, ``when_invalid`` what an unusable
    value leaves."""

    arg: str
    env: str | None
    default: Any
    parse: Callable[[Any], Any] | None
    """Turns a text (environment) or code value into the setting's value; raises ``ValueError`` if it is
    unusable. ``None``: taken as given (objects only code can pass)."""
    doc: str
    when_invalid: str = "the default is used"
    """What ragotel does instead, said in the warning."""
    fallback: bool = True
    """An unusable value falls back to the argument, then the default; ``False``: the part stays off."""
    off: Any = None
    """The value when ``fallback`` is ``False`` and the given one is unusable."""
    aliases: tuple[str, ...] = ()
    """Other variables read, in order, when ``env`` is not set."""


SETTINGS: tuple[Setting, ...] = (
    Setting("service_name", None, None, _text,
            "the resource's ``service.name`` (``OTEL_SERVICE_NAME``, read by the SDK, wins)"),
    Setting("service_version", None, None, _text,
            "the resource's ``service.version`` (``OTEL_RESOURCE_ATTRIBUTES`` wins)"),
    Setting("environment", "RAGOTEL_ENVIRONMENT", None, _text,
            "the resource's ``deployment.environment.name``, a label of every series on ``/metrics``"),
    Setting("provider", "RAGOTEL_PROVIDER", None, _text,
            "the resource's ``cloud.provider``, a label of every series: compare deployments side by side"),
    Setting("cluster", "RAGOTEL_CLUSTER", None, _text, "the resource's ``k8s.cluster.name``, a label of every series"),
    Setting("region", "RAGOTEL_REGION", None, _text, "the resource's ``cloud.region``, a label of every series"),
    Setting("resource_attributes", None, None, None, "more resource attributes, a mapping"),
    Setting("endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", None, _text,
            "OTLP base URL (``/v1/<signal>`` added over HTTP); "
            "``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`` win per signal"),
    Setting("protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", _protocol,
            "OTLP transport; ``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL`` win per signal",
            "OTLP export stays off", fallback=False),
    Setting("console", None, False, _flag,
            "development mode: each finished trace printed as the ``ragotel trace`` waterfall, nothing sent over OTLP"),
    Setting("prometheus_port", "OTEL_EXPORTER_PROMETHEUS_PORT", None, _port,
            "serve ``/metrics`` on this port (0: the reader only)", "the Prometheus endpoint stays off",
            fallback=False, off=-1),
    Setting("prometheus_host", "OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0", _text, "the address ``/metrics`` binds to"),
    Setting("metric_readers", None, (), None, "more metric readers for the meter provider ragotel builds"),
    Setting("span_processors", None, (), None, "more span processors for the tracer provider ragotel builds"),
    Setting("capture_content", "RAGOTEL_CAPTURE_CONTENT", False, _flag,
            "record user text (queries, documents, messages, answers) on spans",
            "content capture stays off", fallback=False, off=False),
    Setting("genai_content", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None, _content_mode,
            "content capture as the GenAI conventions spell it (spans, and the details event in the latest mode); "
            "``RAGOTEL_CAPTURE_CONTENT``, when set, decides",
            "content capture stays off", fallback=False, off="false"),
    Setting("genai_latest_experimental", "OTEL_SEMCONV_STABILITY_OPT_IN", False, _opt_in,
            f"the latest, still moving GenAI conventions (``{GENAI_LATEST}`` in the list)"),
    Setting("max_content_chars", "RAGOTEL_CAPTURE_MAX_CHARS", 2048, _positive_int,
            "characters of each captured text kept"),
    Setting("redact", None, None, None, "a function every captured string passes through before it is recorded"),
    Setting("prices", "RAGOTEL_PRICES_FILE", None, None,
            "the price table (``ragotel.set_prices``) or its file: ``rag.cost.usd``", "cost is not recorded"),
    Setting("export_logs", None, True, _flag,
            "send ``logging`` records as OpenTelemetry logs, stamped with ``trace_id`` and ``span_id``"),
    Setting("detailed_metrics", "RAGOTEL_DETAILED_METRICS", False, _flag,
            "add ``rag.retrieval.top_score``, ``rag.retrieval.score`` and the steps' "
            "``gen_ai.client.operation.duration`` "
            "([what they cost](guide/steps.md#what-a-step-records-and-what-it-costs))"),
    Setting("retrieval_low_score", "RAGOTEL_RETRIEVAL_LOW_SCORE", None, _float,
            "a retrieval whose best score is under this is ``rag.retrieval.quality=low_score``",
            "each step's own min_score is used"),
    Setting("metric_value_limit", "RAGOTEL_METRIC_VALUE_LIMIT", 100, _positive_int,
            "distinct values per metric attribute; more become ``_other``, counted in "
            "``rag.metric.attribute.overflow``"),
    Setting("service_steps", "RAGOTEL_SERVICE_STEPS", (), _service_steps,
            "HTTP calls to the application's own services that are steps (a call to the retriever is a "
            "``retrieval``)",
            "no service is a step"),
    Setting("openinference", "RAGOTEL_OPENINFERENCE", False, _flag,
            "spans also carry OpenInference keys (Phoenix and other OpenInference viewers)"),
    Setting("shutdown_timeout", "RAGOTEL_SHUTDOWN_TIMEOUT", 5.0, _seconds,
            "seconds the flush may take when the process is told to stop (SIGTERM, SIGINT, lifespan shutdown); "
            "0: no such flush"),
)
BY_ARG: Mapping[str, Setting] = {s.arg: s for s in SETTINGS}

ENVIRONMENT_ONLY: tuple[Setting, ...] = (
    Setting("sdk_disabled", "OTEL_SDK_DISABLED", False, _flag,
            "``true``: nothing is set up; every step is a plain call"),
    Setting("disabled_instrumentations", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", frozenset(), _names,
            "instrumentations not to turn on (entry point names: ``ragotel_httpx``, ...; ``threading`` keeps "
            "the context out of threads; ``*`` for all)"),
    # The Kubernetes downward API, as users name it in their pod spec: the first name set wins.
    Setting("k8s_pod_name", "K8S_POD_NAME", None, _text, "the resource's ``k8s.pod.name`` (the downward API)",
            aliases=("POD_NAME",)),
    Setting("k8s_namespace_name", "K8S_NAMESPACE_NAME", None, _text,
            "the resource's ``k8s.namespace.name`` (the downward API)", aliases=("POD_NAMESPACE",)),
    Setting("k8s_node_name", "K8S_NODE_NAME", None, _text, "the resource's ``k8s.node.name`` (the downward API)",
            aliases=("NODE_NAME",)),
)
"""Settings with no ``configure()`` argument: only the environment gives them."""

SDK_READS: tuple[str, ...] = (
    "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT", "OTEL_EXPORTER_OTLP_[SIGNAL_]HEADERS",
    "OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT", "OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION",
    "OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE", "OTEL_BSP_*", "OTEL_BLRP_*", "OTEL_METRIC_EXPORT_INTERVAL",
)
"""Read by the SDK's exporters and processors themselves; ragotel passes no value, so their chain applies."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A setting whose value cannot be used."""

    setting: str
    """The environment variable or ``argument=`` that carried the value."""
    value: object
    reason: str
    consequence: str
    partly: bool = False
    """The value is used without the parts ``reason`` names."""

    def message(self) -> str:
        if self.partly:
            return f"ragotel: {self.setting}={self.value!r}: {self.reason}; {self.consequence}"
        return f"ragotel: {self.setting}={self.value!r} cannot be used ({self.reason}); {self.consequence}"


@dataclass(slots=True)
class Resolved:
    """Values after resolution, by argument name, plus the per-signal exporter choices."""

    values: dict[str, Any] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)
    """Settings given by an argument or the environment (not defaulted)."""
    exporters: dict[str, set[str]] = field(default_factory=dict)
    protocols: dict[str, str | None] = field(default_factory=dict)
    """Per signal; ``None``: the protocol is unusable, OTLP for that signal stays off."""
    endpoints: dict[str, str | None] = field(default_factory=dict)
    """Per signal, what ragotel passes to the exporter: ``None`` lets the exporter's own chain decide."""
    problems: list[Problem] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    """Where each explicit value came from: its environment variable, or ``argument=``; for the per-signal
    protocols, ``protocol.<signal>``."""

    def __getitem__(self, arg: str) -> Any:
        return self.values[arg]


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def resolve(
    args: Mapping[str, Any] | None = None,
    *,
    only: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolved:
    """Arguments and the environment to values; the environment wins, an unusable value is a Problem."""
    args = args or {}
    out = Resolved()
    wanted = set(only) if only is not None else None
    for setting in (*SETTINGS, *ENVIRONMENT_ONLY):
        if wanted is not None and setting.arg not in wanted:
            continue
        out.values[setting.arg] = _one(setting, args.get(setting.arg), environ, out)
    if "capture_content" in out.values and "genai_content" in out.values:
        _resolve_content(out, environ)
    if wanted is None:
        _resolve_exporters(out, environ)
    return out


def _resolve_content(out: Resolved, environ: Mapping[str, str] | None) -> None:
    """Where captured content goes: ``content_spans`` and ``content_events`` from the two switches.

    ``RAGOTEL_CAPTURE_CONTENT`` / ``capture_content=``, when given, decides whether anything is captured
    (on spans); otherwise ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` decides, read as the
    conventions' mode says: ``true``/``false`` by default, ``SPAN_ONLY``, ``EVENT_ONLY``,
    ``SPAN_AND_EVENT`` or ``NO_CONTENT`` under ``gen_ai_latest_experimental``.
    """
    mode = out.values.get("genai_content")
    latest = bool(out.values.get("genai_latest_experimental"))
    row = BY_ARG["genai_content"]
    name = row.env if row.env and env(row.env, environ) is not None else row.arg
    if mode is not None and (mode in ("true", "false")) == latest:
        expected = ", ".join(m.upper() for m in CONTENT_MODES) if latest else "true, false"
        why = f"under {GENAI_LATEST} the value is one of {expected}" if latest else (
            f"expected {expected}; {mode.upper()} needs OTEL_SEMCONV_STABILITY_OPT_IN={GENAI_LATEST}")
        out.problems.append(Problem(name, mode if latest else mode.upper(), why, "content capture stays off"))
        mode = None
    spans = mode in ("true", "span_only", "span_and_event")
    events = latest and mode in ("event_only", "span_and_event")
    if "capture_content" in out.explicit:
        on = bool(out.values["capture_content"])
        spans, events = on, on and events
    out.values["content_spans"], out.values["content_events"] = spans, events


def _one(setting: Setting, arg: Any, environ: Mapping[str, str] | None, out: Resolved) -> Any:
    variable, raw_env = setting.env, None
    for name in (setting.env, *setting.aliases) if setting.env else ():
        raw_env = env(name, environ)
        if raw_env is not None:
            variable = name
            break
    # An unusable environment value falls back to the code's argument, then the default.
    for source, value in ((variable, raw_env), (f"{setting.arg}=", arg)):
        if value is None:
            continue
        out.sources[setting.arg] = str(source)
        if setting.parse is None:
            out.explicit.add(setting.arg)
            return value
        try:
            parsed = setting.parse(value)
        except PartlyUsable as exc:
            out.problems.append(Problem(str(source).rstrip("="), value, str(exc), exc.consequence, partly=True))
            out.explicit.add(setting.arg)
            return exc.kept
        except (TypeError, ValueError) as exc:
            out.problems.append(Problem(str(source).rstrip("="), value, str(exc) or type(exc).__name__,
                                        setting.when_invalid))
            if not setting.fallback:
                out.explicit.add(setting.arg)
                return setting.off
            continue
        out.explicit.add(setting.arg)
        return parsed
    return setting.default


def _resolve_exporters(out: Resolved, environ: Mapping[str, str] | None) -> None:
    console = bool(out.values.get("console"))
    default = {"traces": "console", "metrics": "none", "logs": "none"} if console else {}
    for signal in SIGNALS:
        name = f"OTEL_{signal.upper()}_EXPORTER"
        raw = env(name, environ)
        parts = [p.strip().lower() for p in (raw or default.get(signal, "otlp")).split(",") if p.strip()]
        known = {p for p in parts if p in EXPORTERS[signal]}
        unknown = [p for p in parts if p not in EXPORTERS[signal]]
        if unknown:
            out.problems.append(Problem(
                name, raw, f"unknown exporter {', '.join(unknown)}; known: {', '.join(sorted(EXPORTERS[signal]))}",
                f"no {signal} exporter for it" + (f", using {', '.join(sorted(known))}" if known - {"none"} else ""),
            ))
        out.exporters[signal] = known - {"none"}
    # OTLP per signal (OTLP exporter spec): OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, then the generic variable,
    # then the argument. The resolved generic value is in out.values["protocol"] already.
    generic_env = env("OTEL_EXPORTER_OTLP_PROTOCOL", environ)
    generic_bad = generic_env is not None and generic_env.lower() not in PROTOCOLS
    for signal in SIGNALS:
        name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
        specific = env(name, environ)
        if specific is not None:
            out.sources[f"protocol.{signal}"] = name
            try:
                out.protocols[signal] = _protocol(specific)
            except ValueError as exc:
                out.problems.append(Problem(name, specific, str(exc), f"OTLP {signal} export stays off"))
                out.protocols[signal] = None
        elif generic_bad or out.values.get("protocol") is None:
            out.protocols[signal] = None  # the Problem was recorded by _one ("OTLP export stays off")
        else:
            out.protocols[signal] = out.values.get("protocol") or "http/protobuf"
        # Endpoint: any OTEL_ variable set means the exporter's own chain (signal-specific first) decides.
        signal_endpoint = env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", environ)
        if signal_endpoint is not None or env("OTEL_EXPORTER_OTLP_ENDPOINT", environ) is not None:
            out.endpoints[signal] = None
        else:
            out.endpoints[signal] = out.values.get("endpoint")


def display_endpoint(signal: str, protocol: str, environ: Mapping[str, str] | None = None,
                     argument: str | None = None) -> str:
    """The URL an OTLP exporter for ``signal`` sends to, for messages (the exporter resolves its own)."""
    specific = env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", environ)
    if specific:
        return specific
    base = env("OTEL_EXPORTER_OTLP_ENDPOINT", environ) or argument
    if protocol == "grpc":
        return base or "http://localhost:4317"
    return (base or "http://localhost:4318").rstrip("/") + f"/v1/{signal}"
