"""What Alloy accepts, as data: per component its arguments (name, type, required), its blocks, its exports,
its stability level, and for OpenTelemetry components the signals it takes; the standard library with the
level of each function; and the level of the components and configuration blocks the files do not use.

Written from Grafana Alloy's reference (docs/sources/reference/components/, .../config-blocks/ and
.../stdlib/ in grafana/alloy) and, where the pages are loose, from the Go sources at the same commit: the
``alloy:"name,attr,optional"`` tags of each component's Arguments struct decide what is required and what a
block or argument is called, and the ``Stability: featuregate.Stability...`` of its registration decides a
component's level (see REFERENCE for the commit). Every component the deploy/alloy files use is described
in full; a few blocks the files do not use are listed by name with their contents left unchecked (ANY). A
component without an entry here is an error: describe it from the reference before using it.

Attribute lists read ``name:type``; ``!`` after the type marks a required argument and ``@LEVEL`` after
that an argument below generally-available (``@experimental``, ``@public-preview``). Types: string,
duration, bool, number, int, uint, bytes, secret, any, list(T), map(T), enum:NAME (a value of ENUMS[NAME]; a value
with a level of its own is in ENUM_LEVELS), object(key:type,...), and the capsules consumer
(otelcol.Consumer), metrics_receiver, logs_receiver, targets, relabel_rules, handler (otelcol.Handler).
bytes is a Go byte size (units.Base2Bytes): a whole number, or a string such as "4MiB".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

REFERENCE = (
    "Grafana Alloy reference and Go sources of v1.19.0 (grafana/alloy 5e60f2c6ed, the release commit; its "
    "reference pages and sources are those of main at 66ebea856d); the stack runs v1.21.2, and what changed "
    "after v1.19.0 is not described here"
)

# ---- Stability ----------------------------------------------------------------------------------------

EXPERIMENTAL, PUBLIC_PREVIEW, GENERALLY_AVAILABLE = "experimental", "public-preview", "generally-available"
LEVELS = (EXPERIMENTAL, PUBLIC_PREVIEW, GENERALLY_AVAILABLE)  # lowest first
# The level the stack's Alloy runs at (`--stability.level` in deploy/compose and deploy/k8s): anything below
# it is refused by `alloy validate` and at start-up.
RUN_LEVEL = GENERALLY_AVAILABLE


def below(level: str, minimum: str = RUN_LEVEL) -> bool:
    return LEVELS.index(level) < LEVELS.index(minimum)


@dataclass(frozen=True)
class Spec:
    """A block (or a component's body): its attributes, its blocks, and which of them are required."""

    attrs: Mapping[str, str] = field(default_factory=dict)  # name -> type
    required: frozenset[str] = frozenset()  # required attributes and blocks
    blocks: Mapping[str, Spec] = field(default_factory=dict)
    repeat: bool = False  # may appear more than once in its parent
    open: bool = False  # contents not modelled (a documented block the configs do not use)
    levels: Mapping[str, str] = field(default_factory=dict)  # attribute -> level, only those below GA
    level: str = GENERALLY_AVAILABLE  # the block's own level


ANY = Spec(open=True)
ANY_MANY = Spec(open=True, repeat=True)


def B(attrs: str = "", *, repeat: bool = False, **blocks: Spec) -> Spec:
    """A Spec from ``"name:type name:type! name:type@experimental ..."`` and named blocks (a required block:
    its name ends in ``_``; ``__`` in a name is a dot)."""
    types, required, levels = {}, set(), {}
    for item in attrs.split():
        item, _, level = item.partition("@")
        name, _, kind = item.partition(":")
        if kind.endswith("!"):
            kind = kind[:-1]
            required.add(name)
        if level:
            assert level in LEVELS, level
            levels[name] = level
        types[name] = kind
    named = {}
    for name, spec in blocks.items():
        if name.endswith("_"):
            name = name[:-1]
            required.add(name)
        named[name.replace("__", ".")] = spec
    return Spec(types, frozenset(required), named, repeat, levels=levels)


def many(spec: Spec) -> Spec:
    return replace(spec, repeat=True)


def at(level: str, spec: Spec) -> Spec:
    """A block whose own level is below generally-available."""
    assert level in LEVELS, level
    return replace(spec, level=level)


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
        "container.id", "container.image.name", "container.image.tag", "k8s.container.name", "k8s.cronjob.name",
        "k8s.cronjob.uid", "k8s.daemonset.name", "k8s.daemonset.uid", "k8s.deployment.name",
        "k8s.deployment.uid", "k8s.job.name", "k8s.job.uid", "k8s.namespace.name", "k8s.node.name",
        "k8s.pod.name", "k8s.pod.start_time", "k8s.pod.uid", "k8s.replicaset.name", "k8s.replicaset.uid",
        "k8s.statefulset.name", "k8s.statefulset.uid", "service.instance.id", "service.name",
        "service.namespace", "service.version",
    }),
    "k8s_auth": frozenset({"none", "serviceAccount", "kubeConfig", "tls"}),
    "k8s_role": frozenset({"node", "pod", "service", "endpoints", "endpointslice", "ingress"}),
    "pod_association_from": frozenset({"resource_attribute", "connection"}),
    "trace_context": frozenset({"resource", "scope", "span", "spanevent"}),
    "metric_context": frozenset({"resource", "scope", "metric", "datapoint"}),
    "log_context": frozenset({"resource", "scope", "log"}),
    "lb_routing_key": frozenset({"traceID", "service", "resource", "metric", "streamID"}),
    "cloudmap_health": frozenset({"HEALTHY", "UNHEALTHY", "ALL", "HEALTHY_OR_ELSE_ALL"}),
    "otel_compression": frozenset({"gzip", "zlib", "deflate", "snappy", "zstd", "none", ""}),
    "queue_sizer": frozenset({"requests", "items", "bytes"}),
    "debug_metrics_level": frozenset({"none", "basic", "normal", "detailed"}),
    "scrape_protocol": frozenset({
        "OpenMetricsText0.0.1", "OpenMetricsText1.0.0", "PrometheusProto", "PrometheusText0.0.4",
        "PrometheusText1.0.0",
    }),
    "protobuf_message": frozenset({"prometheus.WriteRequest", "io.prometheus.write.v2.Request"}),
    "tls_version": frozenset({"TLS10", "TLS11", "TLS12", "TLS13"}),
    "log_level": frozenset({"debug", "info", "warn", "error"}),
    "log_format": frozenset({"logfmt", "json"}),
    "log_destination": frozenset({"stderr", "windows_event_log"}),
    "file_detector": frozenset({"fsnotify", "poll"}),
    "otlphttp_encoding": frozenset({"proto", "json"}),
}

# Values with a level of their own (the argument itself is generally available).
ENUM_LEVELS: dict[str, Mapping[str, str]] = {
    # Remote Write v2 is experimental: refused below --stability.level=experimental.
    "protobuf_message": {"io.prometheus.write.v2.Request": EXPERIMENTAL},
    # Metrics support of otelcol.exporter.loadbalancing is experimental: below that level these routing keys
    # export nothing (and "service" routes traces and logs only).
    "lb_routing_key": {"resource": EXPERIMENTAL, "metric": EXPERIMENTAL, "streamID": EXPERIMENTAL},
}

# ---- Shared blocks ------------------------------------------------------------------------------------

OUTPUT = B("logs:list(consumer) metrics:list(consumer) traces:list(consumer)")
DEBUG_METRICS = B("disable_high_cardinality_metrics:bool level:enum:debug_metrics_level")

# otelcol TLS (otelcol-tls-client-block / otelcol-tls-server-block): the settings both share.
_OTEL_TLS = (
    "ca_pem:string ca_file:string cert_pem:string cert_file:string key_pem:secret key_file:string "
    "min_version:string max_version:string reload_interval:duration cipher_suites:list(string) "
    "include_insecure_cipher_suites:bool include_system_ca_certs_pool:bool curve_preferences:list(string)"
)
TPM = B("enabled:bool path:string owner_auth:string auth:string")
OTEL_TLS_CLIENT = B(_OTEL_TLS + " insecure:bool insecure_skip_verify:bool server_name:string", tpm=TPM)
OTEL_TLS_SERVER = B(_OTEL_TLS + " client_ca_file:string", tpm=TPM)

GRPC_KEEPALIVE_CLIENT = B("ping_wait:duration ping_response_timeout:duration ping_without_stream:bool")

OTEL_RETRY = B(
    "enabled:bool initial_interval:duration max_elapsed_time:duration max_interval:duration multiplier:number "
    "randomization_factor:number"
)
OTEL_QUEUE = B(
    "enabled:bool num_consumers:int queue_size:int block_on_overflow:bool sizer:enum:queue_sizer "
    "wait_for_result:bool storage:any",
    batch=B("flush_timeout:duration min_size:int max_size:int sizer:enum:queue_sizer"),
)

# The gRPC client of otelcol.exporter.otlp; the load balancer's is the same without `endpoint`.
_GRPC_CLIENT = (
    "compression:enum:otel_compression read_buffer_size:bytes write_buffer_size:bytes wait_for_ready:bool "
    "headers:map(string) balancer_name:string authority:string auth:handler"
)

# Prometheus-style TLS (tls-config-block), used by scrapes, discovery and writers.
TLS_CONFIG = B(
    "ca_pem:string ca_file:string cert_pem:string cert_file:string key_pem:secret key_file:string "
    "server_name:string insecure_skip_verify:bool min_version:enum:tls_version"
)

# The arguments every Prometheus-style HTTP client takes (common/config HTTPClientConfig, squashed).
HTTP_CLIENT = (
    "bearer_token:secret bearer_token_file:string follow_redirects:bool enable_http2:bool proxy_url:string "
    "no_proxy:string proxy_from_environment:bool proxy_connect_header:map(list(secret)) "
    "http_headers:map(list(secret))"
)
HTTP_AUTH_BLOCKS = {
    "basic_auth": B("username:string password:secret password_file:string"),
    "authorization": B("type:string credentials:secret credentials_file:string"),
    "oauth2": B(
        "client_id:string client_secret:secret client_secret_file:string scopes:list(string) token_url:string "
        "endpoint_params:map(string) proxy_url:string no_proxy:string proxy_from_environment:bool "
        "proxy_connect_header:map(list(secret))",
        tls_config=TLS_CONFIG,
    ),
    "tls_config": TLS_CONFIG,
}
HTTP_CLIENT_BLOCK = B(HTTP_CLIENT, **HTTP_AUTH_BLOCKS)

RULE = many(B(
    "source_labels:list(string) separator:string regex:string modulus:uint target_label:string "
    "replacement:string action:enum:relabel_action"
))
CLUSTERING = B("enabled:bool!")

# ---- Tail sampling policies ---------------------------------------------------------------------------

# Each policy type that takes settings has a block of the same name (SharedPolicyConfig).
POLICY_BLOCKS: dict[str, Spec] = {
    "latency": B("threshold_ms:int! upper_threshold_ms:int"),
    "numeric_attribute": B("key:string! min_value:int! max_value:int! invert_match:bool"),
    "ottl_condition": B("error_mode:enum:error_mode! span:list(string) spanevent:list(string)"),
    "probabilistic": B("sampling_percentage:number! hash_salt:string"),
    "rate_limiting": B("spans_per_second:int! burst_capacity:int"),
    "bytes_limiting": B("bytes_per_second:int! burst_capacity:int"),
    "span_count": B("min_spans:int! max_spans:int"),
    "status_code": B("status_codes:list(enum:status_code)!"),
    "string_attribute": B(
        "key:string! values:list(string)! enabled_regex_matching:bool cache_max_size:int invert_match:bool"
    ),
    "trace_state": B("key:string! values:list(string)!"),
    "boolean_attribute": B("key:string! value:bool! invert_match:bool"),
}
_SHARED_POLICY = "name:string! type:enum:policy_type!"
# and_sub_policy, drop_sub_policy and not_sub_policy: the shared policy only.
SUB_POLICY = B(_SHARED_POLICY, **POLICY_BLOCKS)
AND = B(and_sub_policy_=many(SUB_POLICY))
POLICY = B(
    _SHARED_POLICY,
    repeat=True,
    **POLICY_BLOCKS,
    **{
        "and": AND,
        "not": B(not_sub_policy_=SUB_POLICY),
        "drop": B(drop_sub_policy_=many(SUB_POLICY)),
        "composite": B(
            "max_total_spans_per_second:int! policy_order:list(string)!",
            composite_sub_policy=many(B(_SHARED_POLICY, **POLICY_BLOCKS, **{"and": AND})),
            rate_allocation=many(B("policy:string! percent:int!")),
        ),
    },
)

# ---- Components ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    body: Spec
    exports: Mapping[str, str] = field(default_factory=dict)  # export name -> capsule type
    accepts: frozenset[str] = frozenset()  # signals its `input` takes (otelcol components)
    stability: str = GENERALLY_AVAILABLE  # its registration's featuregate.Stability


ALL_SIGNALS = frozenset({"traces", "metrics", "logs"})
CONSUMER = {"input": "consumer"}


def processor(attrs: str = "", **blocks: Spec) -> Component:
    return Component(B(attrs, output_=OUTPUT, debug_metrics=DEBUG_METRICS, **blocks), CONSUMER, ALL_SIGNALS)


COMPONENTS: dict[str, Component] = {
    "otelcol.receiver.otlp": Component(B(
        output_=OUTPUT,
        debug_metrics=DEBUG_METRICS,
        grpc=B(
            "endpoint:string transport:string max_recv_msg_size:bytes max_concurrent_streams:uint "
            "read_buffer_size:bytes write_buffer_size:bytes auth:handler include_metadata:bool",
            tls=OTEL_TLS_SERVER,
            keepalive=B(
                server_parameters=B(
                    "max_connection_idle:duration max_connection_age:duration max_connection_age_grace:duration "
                    "time:duration timeout:duration"
                ),
                enforcement_policy=B("min_time:duration permit_without_stream:bool"),
            ),
        ),
        http=B(
            "endpoint:string auth:handler max_request_body_size:bytes include_metadata:bool "
            "compression_algorithms:list(string) keep_alives_enabled:bool idle_timeout:duration "
            "read_timeout:duration write_timeout:duration read_header_timeout:duration traces_url_path:string "
            "metrics_url_path:string logs_url_path:string",
            tls=OTEL_TLS_SERVER,
            cors=B("allowed_origins:list(string) allowed_headers:list(string) exposed_headers:list(string) "
                   "max_age:int"),
        ),
    )),
    "otelcol.processor.memory_limiter": processor(
        "check_interval:duration! limit:bytes spike_limit:bytes limit_percentage:uint spike_limit_percentage:uint"
    ),
    "otelcol.processor.batch": processor(
        "timeout:duration send_batch_size:uint send_batch_max_size:uint metadata_keys:list(string) "
        "metadata_cardinality_limit:uint"
    ),
    "otelcol.processor.k8sattributes": processor(
        "auth_type:enum:k8s_auth passthrough:bool wait_for_metadata:bool wait_for_metadata_timeout:duration "
        "watch_sync_period:duration pod_delete_grace_period:duration",
        exclude=B(pod=many(B("name:string!"))),
        extract=B(
            "metadata:list(enum:k8s_metadata) otel_annotations:bool deployment_name_from_replicaset:bool",
            annotation=many(B("tag_name:string key:string key_regex:string from:string")),
            label=many(B("tag_name:string key:string key_regex:string from:string")),
        ),
        filter=B(
            "node:string namespace:string",
            field=many(B("key:string! value:string! op:string")),
            label=many(B("key:string! value:string! op:string")),
        ),
        pod_association=many(B(source_=many(B("from:enum:pod_association_from! name:string")))),
    ),
    "otelcol.processor.transform": processor(
        "error_mode:enum:error_mode",
        statements=B("trace:list(string) metric:list(string) log:list(string)"),
        trace_statements=many(B(
            "context:enum:trace_context! statements:list(string)! conditions:list(string) error_mode:enum:error_mode"
        )),
        metric_statements=many(B(
            "context:enum:metric_context! statements:list(string)! conditions:list(string) error_mode:enum:error_mode"
        )),
        log_statements=many(B(
            "context:enum:log_context! statements:list(string)! conditions:list(string) error_mode:enum:error_mode"
        )),
    ),
    "otelcol.processor.tail_sampling": Component(
        B(
            "decision_wait:duration decision_wait_after_root_received:duration num_traces:uint "
            "block_on_overflow:bool expected_new_traces_per_sec:uint sample_on_first_match:bool "
            "drop_pending_traces_on_shutdown:bool maximum_trace_size_bytes:uint "
            "decision_cache:object(sampled_cache_size:int,non_sampled_cache_size:int)",
            output_=OUTPUT, policy_=POLICY, debug_metrics=DEBUG_METRICS,
        ),
        CONSUMER,
        frozenset({"traces"}),  # the upstream processor has a traces pipeline only
    ),
    "otelcol.exporter.otlp": Component(
        B(
            "timeout:duration",
            client_=B("endpoint:string! " + _GRPC_CLIENT, keepalive=GRPC_KEEPALIVE_CLIENT, tls=OTEL_TLS_CLIENT),
            debug_metrics=DEBUG_METRICS, retry_on_failure=OTEL_RETRY, sending_queue=OTEL_QUEUE,
        ),
        CONSUMER, ALL_SIGNALS,
    ),
    "otelcol.exporter.otlphttp": Component(
        B(
            "traces_endpoint:string metrics_endpoint:string logs_endpoint:string encoding:enum:otlphttp_encoding",
            client_=B(
                "endpoint:string! proxy_url:string compression:enum:otel_compression read_buffer_size:bytes "
                "write_buffer_size:bytes timeout:duration headers:map(string) max_idle_conns:int "
                "max_idle_conns_per_host:int max_conns_per_host:int idle_conn_timeout:duration "
                "disable_keep_alives:bool http2_read_idle_timeout:duration http2_ping_timeout:duration "
                "force_attempt_http2:bool auth:handler",
                tls=OTEL_TLS_CLIENT, cookies=B("enabled:bool"), compression_params=B("level:int!"),
            ),
            debug_metrics=DEBUG_METRICS, retry_on_failure=OTEL_RETRY, sending_queue=OTEL_QUEUE,
        ),
        CONSUMER, ALL_SIGNALS,
    ),
    # honor_metadata: marked experimental on the reference page (the two others are also refused in code).
    "otelcol.exporter.prometheus": Component(
        B(
            "forward_to:list(metrics_receiver)! include_target_info:bool include_scope_info:bool "
            "include_scope_labels:bool gc_frequency:duration add_metric_suffixes:bool "
            "resource_to_telemetry_conversion:bool keep_identifying_resource_attributes:bool "
            "honor_metadata:bool@experimental convert_classic_histograms_to_nhcb:bool@experimental "
            "start_timestamp_zero_ingestion:bool@experimental",
            debug_metrics=DEBUG_METRICS,
        ),
        CONSUMER,
        frozenset({"metrics"}),  # "other telemetry signals are ignored"
    ),
    # The reference page lists `protocol` as optional; the Arguments struct requires it (`protocol,block`),
    # and `otlp` and its `client` inside it. The top-level retry block is `retry_on_failure` (the page says
    # `retry`).
    "otelcol.exporter.loadbalancing": Component(
        B(
            "routing_key:enum:lb_routing_key timeout:duration",
            protocol_=B(otlp_=B(
                "timeout:duration",
                client_=B(_GRPC_CLIENT, tls=OTEL_TLS_CLIENT, keepalive=GRPC_KEEPALIVE_CLIENT),
                queue=OTEL_QUEUE, retry=OTEL_RETRY,
            )),
            resolver_=B(
                static=B("hostnames:list(string)!"),
                dns=B("hostname:string! port:string interval:duration timeout:duration"),
                kubernetes=B("service:string! ports:list(int) timeout:duration return_hostnames:bool"),
                aws_cloud_map=B(
                    "namespace:string! service_name:string! health_status:enum:cloudmap_health interval:duration "
                    "timeout:duration port:uint owner_account:string"
                ),
            ),
            retry_on_failure=OTEL_RETRY, sending_queue=OTEL_QUEUE, debug_metrics=DEBUG_METRICS,
        ),
        CONSUMER,
        frozenset({"traces", "logs"}),  # at generally-available: metrics only at --stability.level=experimental
    ),
    "prometheus.remote_write": Component(
        B(
            "external_labels:map(string)",
            endpoint=many(B(
                "url:string! name:string remote_timeout:duration headers:map(string) send_exemplars:bool "
                "send_native_histograms:bool protobuf_message:enum:protobuf_message round_robin_dns:bool "
                + HTTP_CLIENT,
                queue_config=B(
                    "capacity:int max_shards:int min_shards:int max_samples_per_send:int "
                    "batch_send_deadline:duration min_backoff:duration max_backoff:duration retry_on_http_429:bool "
                    "sample_age_limit:duration"
                ),
                metadata_config=B("send:bool send_interval:duration max_samples_per_send:int"),
                write_relabel_config=RULE,
                sigv4=B(
                    "region:string access_key:string secret_key:secret profile:string role_arn:string "
                    "external_id:string use_fips_sts_endpoint:bool service_name:string"
                ),
                azuread=ANY,
                google_iam=B("credentials_file:string"),
                **HTTP_AUTH_BLOCKS,
            )),
            wal=B("truncate_frequency:duration min_keepalive_time:duration max_keepalive_time:duration"),
        ),
        {"receiver": "metrics_receiver"},
    ),
    "prometheus.scrape": Component(B(
        "targets:targets! forward_to:list(metrics_receiver)! job_name:string honor_labels:bool "
        "honor_timestamps:bool track_timestamps_staleness:bool params:map(list(string)) "
        "scrape_classic_histograms:bool scrape_native_histograms:bool scrape_failure_log_file:string "
        "scrape_interval:duration scrape_timeout:duration scrape_protocols:list(enum:scrape_protocol) "
        "metrics_path:string scheme:string body_size_limit:bytes sample_limit:uint target_limit:uint "
        "label_limit:uint label_name_length_limit:uint label_value_length_limit:uint extra_metrics:bool "
        "enable_protobuf_negotiation:bool metric_name_validation_scheme:string metric_name_escaping_scheme:string "
        "scrape_fallback_protocol:enum:scrape_protocol convert_classic_histograms_to_nhcb:bool "
        "enable_compression:bool native_histogram_bucket_limit:uint native_histogram_min_bucket_factor:number "
        "honor_metadata:bool@experimental enable_type_and_unit_labels:bool@experimental "
        "start_timestamp_zero_ingestion:bool@experimental " + HTTP_CLIENT,
        clustering=CLUSTERING, **HTTP_AUTH_BLOCKS,
    )),
    "prometheus.exporter.self": Component(B(), {"targets": "targets"}),
    "discovery.relabel": Component(B("targets:targets!", rule=RULE), {"output": "targets", "rules": "relabel_rules"}),
    "discovery.docker": Component(
        B(
            "host:string! port:int host_networking_host:string refresh_interval:duration match_first_network:bool "
            + HTTP_CLIENT,
            filter=many(B("name:string! values:list(string)!")), **HTTP_AUTH_BLOCKS,
        ),
        {"targets": "targets"},
    ),
    "discovery.kubernetes": Component(
        B(
            "api_server:string role:enum:k8s_role! kubeconfig_file:string " + HTTP_CLIENT,
            namespaces=B("own_namespace:bool names:list(string)"),
            selectors=many(B("role:enum:k8s_role! label:string field:string")),
            attach_metadata=B("node:bool namespace:bool"),
            **HTTP_AUTH_BLOCKS,
        ),
        {"targets": "targets"},
    ),
    # queue_config and wal: experimental blocks on the reference page (a changed queue_config is also
    # refused in code below --stability.level=experimental).
    "loki.write": Component(
        B(
            "external_labels:map(string) max_streams:int",
            endpoint=many(B(
                "url:string! name:string batch_wait:duration batch_size:bytes remote_timeout:duration "
                "headers:map(string) min_backoff_period:duration max_backoff_period:duration "
                "max_backoff_retries:int tenant_id:string retry_on_http_429:bool " + HTTP_CLIENT,
                queue_config=at(EXPERIMENTAL, B(
                    "capacity:bytes min_shards:int drain_timeout:duration block_on_overflow:bool"
                )),
                **HTTP_AUTH_BLOCKS,
            )),
            wal=at(EXPERIMENTAL, B(
                "enabled:bool max_segment_age:duration min_read_frequency:duration max_read_frequency:duration "
                "drain_timeout:duration"
            )),
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
                "pack", "pattern", "replace", "sampling", "split_json", "static_labels", "structured_metadata_drop",
                "template", "tenant", "timestamp", "truncate", "windowsevent",
            )},
        ),
        {"receiver": "logs_receiver"},
    ),
    # The reference page marks `labels` required yet gives it a default ({}); the Arguments struct has it
    # optional (`labels,attr,optional`). The Docker daemon's HTTP client is `http_client_config`.
    "loki.source.docker": Component(B(
        "host:string! targets:targets! forward_to:list(logs_receiver)! labels:map(string) "
        "relabel_rules:relabel_rules refresh_interval:duration",
        http_client_config=HTTP_CLIENT_BLOCK,
    )),
    "loki.source.kubernetes": Component(B(
        "targets:targets! forward_to:list(logs_receiver)!",
        client=B("api_server:string kubeconfig_file:string " + HTTP_CLIENT, **HTTP_AUTH_BLOCKS),
        clustering=CLUSTERING,
    )),
}

# Components the files do not use whose registration is below generally-available (featuregate.Stability of
# each component.Register, cross-checked against the `stage:` of its reference page; where the two differ, the
# registration, which is what Alloy enforces). Every other component of the reference is generally available.
OTHER_COMPONENT_LEVELS: dict[str, str] = {
    **dict.fromkeys((
        "database_observability.sql_server", "loki.enrich", "mimir.alerts.kubernetes", "otelcol.connector.count",
        "otelcol.connector.signaltometrics", "otelcol.exporter.awss3", "otelcol.exporter.debug",
        "otelcol.exporter.faro", "otelcol.processor.deltatocumulative", "otelcol.processor.interval",
        "otelcol.processor.redaction", "otelcol.receiver.awscloudwatch", "otelcol.receiver.awsecscontainermetrics",
        "otelcol.receiver.awss3", "otelcol.receiver.cloudflare", "otelcol.receiver.datadog",
        "otelcol.receiver.faro", "otelcol.receiver.fluentforward", "otelcol.receiver.tcplog",
        "otelcol.receiver.vcenter", "prometheus.enrich", "prometheus.exporter.catchpoint",
        "prometheus.exporter.static", "prometheus.operator.scrapeconfigs", "pyroscope.enrich",
    ), EXPERIMENTAL),
    **dict.fromkeys((
        "loki.secretfilter", "module.file", "module.git", "module.http", "module.string", "otelcol.auth.google",
        "otelcol.exporter.file", "otelcol.exporter.syslog", "otelcol.processor.cumulativetodelta",
        "otelcol.receiver.filelog", "otelcol.receiver.nginx", "otelcol.receiver.splunkhec",
        "otelcol.receiver.syslog", "otelcol.storage.file", "pyroscope.java",
    ), PUBLIC_PREVIEW),
}

# Blocks that configure Alloy itself or modules rather than define components.
CONFIG_BLOCKS: dict[str, Spec] = {
    "logging": B("level:enum:log_level format:enum:log_format write_to:list(logs_receiver) "
                 "destination:enum:log_destination"),
    "import.file": B("filename:string! detector:enum:file_detector poll_frequency:duration"),
    "argument": B("comment:string optional:bool default:any"),
    "export": B("value:any!"),
}
# Recognised but not modelled: the configs do not use them.
UNMODELLED_CONFIG_BLOCKS = frozenset({
    "tracing", "http", "livedebugging", "remotecfg", "foreach", "import.git", "import.http", "import.string",
})
CONFIG_BLOCK_LEVELS: dict[str, str] = {"foreach": EXPERIMENTAL}  # every other one is generally available

# The standard library (syntax/internal/stdlib): functions (called) and constants (read), by dotted name.
STDLIB_FUNCTION_LEVELS: dict[str, str] = {
    **dict.fromkeys((
        "sys.env", "coalesce", "convert.nonsensitive", "json_path", "file.path_join",
        "encoding.from_json", "encoding.from_yaml", "encoding.from_base64", "encoding.from_URLbase64",
        "encoding.to_json", "encoding.to_base64", "encoding.to_URLbase64", "encoding.url_encode",
        "encoding.url_decode",
        "string.format", "string.join", "string.replace", "string.split", "string.to_lower", "string.to_upper",
        "string.trim", "string.trim_prefix", "string.trim_suffix", "string.trim_space",
        "array.concat",
        # The names these had before the namespaces: still accepted, with a deprecation warning.
        "env", "nonsensitive", "concat", "json_decode", "yaml_decode", "base64_decode", "format", "join",
        "replace", "split", "to_lower", "to_upper", "trim", "trim_prefix", "trim_suffix", "trim_space",
    ), GENERALLY_AVAILABLE),
    # stdlib.ExperimentalIdentifiers (array.combine_maps is what targets.merge became; there is no `targets`
    # namespace).
    "array.combine_maps": EXPERIMENTAL,
    "array.group_by": EXPERIMENTAL,
}
STDLIB_FUNCTIONS = frozenset(STDLIB_FUNCTION_LEVELS)
STDLIB_CONSTANTS = frozenset({"constants.hostname", "constants.os", "constants.arch", "constants.version"})
STDLIB_NAMESPACES = frozenset(name.split(".")[0] for name in STDLIB_FUNCTIONS | STDLIB_CONSTANTS if "." in name)
