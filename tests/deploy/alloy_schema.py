"""What Alloy accepts, as data: per component its arguments (name, type, required), its blocks, its exports,
and for OpenTelemetry components the signals it takes.

Written from Grafana Alloy's component reference (docs/sources/reference/components/ in grafana/alloy, the
pages of the 1.1x series whose tail sampler wraps OpenTelemetry Collector contrib v0.14x; the stack runs
v1.21.2, see REFERENCE). Every component the deploy/alloy files use is described in full; blocks the
files do not use are listed by name with their contents left unchecked (ANY). A component without an entry
here is an error: describe it from the reference before using it.

Attribute lists read ``name:type``, ``!`` after the type marks a required argument. Types: string,
duration, bool, number, int, uint, secret, any, list(T), map(T), enum:NAME (a value of ENUMS[NAME]),
object(key:type,...), and the capsules consumer (otelcol.Consumer), metrics_receiver, logs_receiver,
targets, relabel_rules, handler (otelcol.Handler).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

REFERENCE = "Grafana Alloy component reference, 1.1x series (tail sampler of Collector contrib v0.14x); stack: v1.21.2"


@dataclass(frozen=True)
class Spec:
    """A block (or a component's body): its attributes, its blocks, and which of them are required."""

    attrs: Mapping[str, str] = field(default_factory=dict)  # name -> type
    required: frozenset[str] = frozenset()  # required attributes and blocks
    blocks: Mapping[str, Spec] = field(default_factory=dict)
    repeat: bool = False  # may appear more than once in its parent
    open: bool = False  # contents not modelled (a documented block the configs do not use)


ANY = Spec(open=True)
ANY_MANY = Spec(open=True, repeat=True)


def B(attrs: str = "", *, repeat: bool = False, **blocks: Spec) -> Spec:
    """A Spec from ``"name:type name:type! ..."`` and named blocks (a required block: its name ends in ``_``)."""
    types, required = {}, set()
    for item in attrs.split():
        name, _, kind = item.partition(":")
        if kind.endswith("!"):
            kind = kind[:-1]
            required.add(name)
        types[name] = kind
    named = {}
    for name, spec in blocks.items():
        if name.endswith("_"):
            name = name[:-1]
            required.add(name)
        named[name.replace("__", ".")] = spec
    return Spec(types, frozenset(required), named, repeat)


def many(spec: Spec) -> Spec:
    return Spec(spec.attrs, spec.required, spec.blocks, True, spec.open)


ENUMS: dict[str, frozenset[str]] = {
    "error_mode": frozenset({"ignore", "silent", "propagate"}),
    "policy_type": frozenset({
        "always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
        "rate_limiting", "bytes_limiting", "span_count", "trace_state", "boolean_attribute", "ottl_condition",
        "trace_flags", "and", "not", "drop", "composite",
    }),
    "status_code": frozenset({"OK", "ERROR", "UNSET"}),
    "relabel_action": frozenset({
        "replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
        "keepequal", "dropequal",
    }),
    "k8s_metadata": frozenset({
        "container.id", "container.image.name", "container.image.tag", "container.image.tags",
        "k8s.container.name", "k8s.cronjob.name", "k8s.cronjob.uid", "k8s.daemonset.name", "k8s.daemonset.uid",
        "k8s.deployment.name", "k8s.deployment.uid", "k8s.job.name", "k8s.job.uid", "k8s.namespace.name",
        "k8s.node.name", "k8s.pod.name", "k8s.pod.start_time", "k8s.pod.uid", "k8s.replicaset.name",
        "k8s.replicaset.uid", "k8s.statefulset.name", "k8s.statefulset.uid", "service.instance.id",
        "service.name", "service.namespace", "service.version",
    }),
    "k8s_auth": frozenset({"none", "serviceAccount", "kubeConfig", "tls"}),
    "k8s_role": frozenset({"node", "pod", "service", "endpoints", "endpointslice", "ingress"}),
    "pod_association_from": frozenset({"resource_attribute", "connection"}),
    "trace_context": frozenset({"resource", "scope", "span", "spanevent"}),
    "metric_context": frozenset({"resource", "scope", "metric", "datapoint"}),
    "log_context": frozenset({"resource", "scope", "log"}),
    "routing_key": frozenset({"traceID", "service", "resource", "metric", "streamID"}),
    "scrape_protocol": frozenset({
        "OpenMetricsText0.0.1", "OpenMetricsText1.0.0", "PrometheusProto", "PrometheusText0.0.4",
        "PrometheusText1.0.0",
    }),
    "tls_version": frozenset({"TLS10", "TLS11", "TLS12", "TLS13"}),
    "log_level": frozenset({"debug", "info", "warn", "error"}),
    "log_format": frozenset({"logfmt", "json"}),
    "file_detector": frozenset({"fsnotify", "poll"}),
    "otlphttp_encoding": frozenset({"proto", "json"}),
}

# ---- Shared blocks ------------------------------------------------------------------------------------

OUTPUT = B("logs:list(consumer) metrics:list(consumer) traces:list(consumer)")

# otelcol client TLS (otelcol-tls-client-block).
OTEL_TLS = B(
    "ca_file:string ca_pem:string cert_file:string cert_pem:string insecure_skip_verify:bool "
    "include_system_ca_certs_pool:bool insecure:bool key_file:string key_pem:secret max_version:string "
    "min_version:string cipher_suites:list(string) reload_interval:duration server_name:string "
    "curve_preferences:list(string)",
    tpm=ANY,
)

# Prometheus-style TLS (tls-config-block), used by scrapes, discovery and writers.
TLS_CONFIG = B(
    "ca_pem:string ca_file:string cert_pem:string cert_file:string insecure_skip_verify:bool key_file:string "
    "key_pem:secret min_version:enum:tls_version server_name:string"
)

GRPC_KEEPALIVE = B("ping_wait:duration ping_response_timeout:duration ping_without_stream:bool")

OTEL_RETRY = B(
    "enabled:bool initial_interval:duration max_elapsed_time:duration max_interval:duration multiplier:number "
    "randomization_factor:number"
)

# The arguments every Prometheus-style HTTP client takes (discovery, scrape, writers).
HTTP_CLIENT = (
    "bearer_token_file:string bearer_token:secret enable_http2:bool follow_redirects:bool "
    "http_headers:map(list(secret)) no_proxy:string proxy_connect_header:map(list(secret)) "
    "proxy_from_environment:bool proxy_url:string"
)
HTTP_AUTH_BLOCKS = {"authorization": ANY, "basic_auth": ANY, "oauth2": ANY, "tls_config": TLS_CONFIG}

RULE = many(B(
    "action:enum:relabel_action modulus:uint regex:string replacement:string separator:string "
    "source_labels:list(string) target_label:string"
))

# ---- Tail sampling policies ---------------------------------------------------------------------------

# Each policy type that takes settings has a block of the same name.
POLICY_BLOCKS: dict[str, Spec] = {
    "latency": B("threshold_ms:number! upper_threshold_ms:number"),
    "numeric_attribute": B("key:string! min_value:number! max_value:number! invert_match:bool"),
    "ottl_condition": B("error_mode:enum:error_mode! span:list(string) spanevent:list(string)"),
    "probabilistic": B("sampling_percentage:number! hash_salt:string"),
    "rate_limiting": B("spans_per_second:number! burst_capacity:number"),
    "bytes_limiting": B("bytes_per_second:number! burst_capacity:number"),
    "span_count": B("min_spans:number! max_spans:number"),
    "status_code": B("status_codes:list(enum:status_code)!"),
    "string_attribute": B(
        "key:string! values:list(string)! enabled_regex_matching:bool cache_max_size:number invert_match:bool"
    ),
    "trace_state": B("key:string! values:list(string)!"),
    "boolean_attribute": B("key:string! value:bool! invert_match:bool"),
}
SUB_POLICY = B("name:string! type:enum:policy_type!", repeat=True, **POLICY_BLOCKS)
POLICY = B(
    "name:string! type:enum:policy_type!",
    repeat=True,
    **POLICY_BLOCKS,
    **{
        "and": B(and_sub_policy=SUB_POLICY),
        "not": B(not_sub_policy=Spec(SUB_POLICY.attrs, SUB_POLICY.required, SUB_POLICY.blocks)),
        "drop": B(drop_sub_policy=SUB_POLICY),
        "composite": B(
            "max_total_spans_per_second:number policy_order:list(string)",
            composite_sub_policy=SUB_POLICY,
            rate_allocation=many(B("policy:string percent:number")),
        ),
    },
)

# ---- Components ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    body: Spec
    exports: Mapping[str, str] = field(default_factory=dict)  # export name -> capsule type
    accepts: frozenset[str] = frozenset()  # signals its `input` takes (otelcol components)


ALL_SIGNALS = frozenset({"traces", "metrics", "logs"})
CONSUMER = {"input": "consumer"}


def processor(attrs: str = "", **blocks: Spec) -> Component:
    return Component(B(attrs, output_=OUTPUT, debug_metrics=ANY, **blocks), CONSUMER, ALL_SIGNALS)


COMPONENTS: dict[str, Component] = {
    "otelcol.receiver.otlp": Component(B(
        output_=OUTPUT,
        debug_metrics=ANY,
        grpc=B(
            "auth:handler endpoint:string include_metadata:bool max_concurrent_streams:number "
            "max_recv_msg_size:string read_buffer_size:string transport:string write_buffer_size:string",
            keepalive=ANY, tls=ANY,
        ),
        http=B(
            "auth:handler compression_algorithms:list(string) endpoint:string idle_timeout:duration "
            "include_metadata:bool keep_alives_enabled:bool logs_url_path:string max_request_body_size:string "
            "metrics_url_path:string read_header_timeout:duration read_timeout:duration traces_url_path:string "
            "write_timeout:duration",
            cors=ANY, tls=ANY,
        ),
    )),
    "otelcol.processor.memory_limiter": processor(
        "check_interval:duration! limit_percentage:int limit:string spike_limit_percentage:int spike_limit:string "
        "max_gc_interval_when_hard_limited:duration max_gc_interval_when_soft_limited:duration "
        "min_gc_interval_when_hard_limited:duration min_gc_interval_when_soft_limited:duration"
    ),
    "otelcol.processor.batch": processor(
        "metadata_cardinality_limit:number metadata_keys:list(string) send_batch_max_size:number "
        "send_batch_size:int timeout:duration"
    ),
    "otelcol.processor.k8sattributes": processor(
        "auth_type:enum:k8s_auth passthrough:bool wait_for_metadata_timeout:duration wait_for_metadata:bool "
        "watch_sync_period:duration pod_delete_grace_period:duration",
        exclude=B(pod=many(B("name:string!"))),
        extract=B(
            "deployment_name_from_replicaset:bool metadata:list(enum:k8s_metadata) otel_annotations:bool",
            annotation=ANY_MANY, label=ANY_MANY,
        ),
        filter=B("node:string namespace:string", field=ANY_MANY, label=ANY_MANY),
        pod_association=many(B(source=many(B("from:enum:pod_association_from! name:string")))),
    ),
    "otelcol.processor.transform": processor(
        "error_mode:enum:error_mode",
        trace_statements=many(B("context:enum:trace_context! statements:list(string)!")),
        metric_statements=many(B("context:enum:metric_context! statements:list(string)!")),
        log_statements=many(B("context:enum:log_context! statements:list(string)!")),
    ),
    "otelcol.processor.tail_sampling": Component(
        B(
            "decision_wait:duration decision_wait_after_root_received:duration num_traces:int "
            "block_on_overflow:bool expected_new_traces_per_sec:int sample_on_first_match:bool "
            "drop_pending_traces_on_shutdown:bool maximum_trace_size_bytes:int num_shards:int "
            "decision_cache:object(sampled_cache_size:int,non_sampled_cache_size:int)",
            output_=OUTPUT, policy_=POLICY, debug_metrics=ANY,
        ),
        CONSUMER,
        frozenset({"traces"}),  # the upstream processor has a traces pipeline only
    ),
    "otelcol.exporter.otlp": Component(
        B(
            "timeout:duration",
            client_=B(
                "endpoint:string! auth:handler authority:string balancer_name:string compression:string "
                "headers:map(string) read_buffer_size:string wait_for_ready:bool write_buffer_size:string",
                keepalive=GRPC_KEEPALIVE, tls=OTEL_TLS,
            ),
            debug_metrics=ANY, retry_on_failure=OTEL_RETRY, sending_queue=ANY,
        ),
        CONSUMER, ALL_SIGNALS,
    ),
    "otelcol.exporter.otlphttp": Component(
        B(
            "metrics_endpoint:string logs_endpoint:string traces_endpoint:string encoding:enum:otlphttp_encoding",
            client_=B(
                "endpoint:string! proxy_url:string read_buffer_size:string write_buffer_size:string "
                "timeout:duration headers:map(string) compression:string max_idle_conns:int "
                "max_idle_conns_per_host:int max_conns_per_host:int idle_conn_timeout:duration "
                "disable_keep_alives:bool http2_read_idle_timeout:duration http2_ping_timeout:duration "
                "auth:handler",
                tls=OTEL_TLS, cookies=B("enabled:bool"),
            ),
            debug_metrics=ANY, retry_on_failure=OTEL_RETRY, sending_queue=ANY,
        ),
        CONSUMER, ALL_SIGNALS,
    ),
    "otelcol.exporter.prometheus": Component(
        B(
            "forward_to:list(metrics_receiver)! add_metric_suffixes:bool convert_classic_histograms_to_nhcb:bool "
            "start_timestamp_zero_ingestion:bool gc_frequency:duration honor_metadata:bool "
            "include_scope_info:bool include_scope_labels:bool include_target_info:bool "
            "keep_identifying_resource_attributes:bool resource_to_telemetry_conversion:bool",
            debug_metrics=ANY,
        ),
        CONSUMER,
        frozenset({"metrics"}),  # "other telemetry signals are ignored"
    ),
    "otelcol.exporter.loadbalancing": Component(
        B(
            "routing_key:enum:routing_key",
            resolver_=B(
                static=B("hostnames:list(string)!"),
                dns=B("hostname:string! interval:duration timeout:duration port:string"),
                kubernetes=B("service:string! ports:list(number) timeout:duration"),
                aws_cloud_map=ANY,
            ),
            protocol=B(otlp=B(
                client=B(
                    "compression:string read_buffer_size:string write_buffer_size:string wait_for_ready:bool "
                    "headers:map(string) balancer_name:string authority:string auth:handler",
                    tls=OTEL_TLS, keepalive=GRPC_KEEPALIVE,
                ),
                queue=ANY, retry=OTEL_RETRY,
            )),
            debug_metrics=ANY,
        ),
        CONSUMER,
        frozenset({"traces", "logs"}),
    ),
    "prometheus.remote_write": Component(
        B(
            "external_labels:map(string)",
            endpoint=many(B(
                "url:string! headers:map(string) name:string protobuf_message:string remote_timeout:duration "
                "round_robin_dns:bool send_exemplars:bool send_native_histograms:bool " + HTTP_CLIENT,
                azuread=ANY, google_iam=ANY, metadata_config=ANY, queue_config=ANY, sigv4=ANY,
                write_relabel_config=ANY_MANY, **HTTP_AUTH_BLOCKS,
            )),
            wal=B("truncate_frequency:duration min_keepalive_time:duration max_keepalive_time:duration"),
        ),
        {"receiver": "metrics_receiver"},
    ),
    "prometheus.scrape": Component(B(
        "forward_to:list(metrics_receiver)! targets:targets! body_size_limit:int "
        "convert_classic_histograms_to_nhcb:bool enable_compression:bool enable_protobuf_negotiation:bool "
        "extra_metrics:bool honor_labels:bool honor_timestamps:bool honor_metadata:bool job_name:string "
        "label_limit:uint label_name_length_limit:uint label_value_length_limit:uint "
        "metric_name_escaping_scheme:string metric_name_validation_scheme:string metrics_path:string "
        "native_histogram_bucket_limit:uint native_histogram_min_bucket_factor:number params:map(list(string)) "
        "sample_limit:uint scheme:string scrape_classic_histograms:bool scrape_failure_log_file:string "
        "scrape_fallback_protocol:string scrape_interval:duration scrape_native_histograms:bool "
        "scrape_protocols:list(enum:scrape_protocol) scrape_timeout:duration target_limit:uint "
        "track_timestamps_staleness:bool " + HTTP_CLIENT,
        clustering=B("enabled:bool!"), **HTTP_AUTH_BLOCKS,
    )),
    "prometheus.exporter.self": Component(B(), {"targets": "targets"}),
    "discovery.relabel": Component(B("targets:targets!", rule=RULE), {"output": "targets", "rules": "relabel_rules"}),
    "discovery.docker": Component(
        B(
            "host:string! host_networking_host:string match_first_network:bool port:number "
            "refresh_interval:duration " + HTTP_CLIENT,
            filter=many(B("name:string! values:list(string)!")), **HTTP_AUTH_BLOCKS,
        ),
        {"targets": "targets"},
    ),
    "discovery.kubernetes": Component(
        B(
            "api_server:string role:enum:k8s_role! kubeconfig_file:string " + HTTP_CLIENT,
            namespaces=B("own_namespace:bool names:list(string)"),
            selectors=many(B("role:enum:k8s_role! label:string field:string")),
            attach_metadata=B("node:bool"),
            **HTTP_AUTH_BLOCKS,
        ),
        {"targets": "targets"},
    ),
    "loki.write": Component(
        B(
            "external_labels:map(string) max_streams:int",
            endpoint=many(B(
                "url:string! batch_size:string batch_wait:duration headers:map(string) max_backoff_period:duration "
                "max_backoff_retries:int min_backoff_period:duration name:string remote_timeout:duration "
                "retry_on_http_429:bool tenant_id:string " + HTTP_CLIENT,
                queue_config=ANY, **HTTP_AUTH_BLOCKS,
            )),
            wal=ANY,
        ),
        {"receiver": "logs_receiver"},
    ),
    "loki.process": Component(
        B(
            "forward_to:list(logs_receiver)!",
            stage__regex=many(B("expression:string! source:string labels_from_groups:bool")),
            stage__structured_metadata=many(B("values:map(string) regex:string")),
            **{f"stage__{name}": ANY_MANY for name in (
                "cri", "decolorize", "docker", "drop", "eventlogmessage", "geoip", "json", "label_drop",
                "label_keep", "labels", "limit", "logfmt", "luhn", "match", "metrics", "multiline", "output",
                "pack", "replace", "sampling", "static_labels", "structured_metadata_drop", "template", "tenant",
                "timestamp", "windowsevent",
            )},
        ),
        {"receiver": "logs_receiver"},
    ),
    # The reference marks `labels` required yet gives it a default ({}): taken as optional.
    "loki.source.docker": Component(B(
        "host:string! targets:targets! forward_to:list(logs_receiver)! labels:map(string) "
        "relabel_rules:relabel_rules refresh_interval:duration",
        client=ANY,
    )),
    "loki.source.kubernetes": Component(B(
        "targets:targets! forward_to:list(logs_receiver)!", client=ANY, clustering=B("enabled:bool!"), position=ANY,
    )),
}

# Blocks that configure Alloy itself or modules rather than define components.
CONFIG_BLOCKS: dict[str, Spec] = {
    "logging": B("level:enum:log_level format:enum:log_format write_to:list(logs_receiver)"),
    "import.file": B("filename:string! detector:enum:file_detector poll_frequency:duration"),
    "argument": B("comment:string optional:bool default:any"),
    "export": B("value:any!"),
}
# Recognised but not modelled: the configs do not use them.
UNMODELLED_CONFIG_BLOCKS = frozenset({
    "tracing", "http", "livedebugging", "remotecfg", "foreach", "import.git", "import.http", "import.string",
})

# The standard library: functions (called) and constants (read), by dotted name.
STDLIB_FUNCTIONS = frozenset({
    "sys.env", "coalesce", "convert.nonsensitive", "json_path", "file.path_join",
    "encoding.from_base64", "encoding.from_json", "encoding.from_yaml", "encoding.from_URLbase64",
    "encoding.to_base64",
    "string.format", "string.join", "string.replace", "string.split", "string.to_lower", "string.to_upper",
    "string.trim", "string.trim_prefix", "string.trim_suffix", "string.trim_space",
    "array.concat", "array.combine_maps", "targets.merge", "targets.inner_join",
    # The names these had before the namespaces (still accepted, deprecated).
    "env", "concat", "format", "join", "nonsensitive", "split", "to_lower", "to_upper", "trim", "trim_prefix",
    "trim_suffix", "trim_space", "json_decode", "yaml_decode", "base64_decode", "replace",
})
STDLIB_CONSTANTS = frozenset({"constants.hostname", "constants.os", "constants.arch"})
STDLIB_NAMESPACES = frozenset(name.split(".")[0] for name in STDLIB_FUNCTIONS | STDLIB_CONSTANTS if "." in name)
