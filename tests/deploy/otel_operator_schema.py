"""The OpenTelemetry Operator's ``Instrumentation`` (opentelemetry.io/v1alpha1) as the API server and the
Operator's admission webhook accept it, for checking the object deploy/k8s/components/opentelemetry-operator
renders.

No package on PyPI carries the Operator's CRDs or models (there is no cloudcoil-models-opentelemetry-operator
beside the prometheus-operator one), so these models are written here from what the Operator defines for
v0.158.0 (its Go API types and the CRD generated from them): v1alpha1 is the one version the CRD serves;
the fields of ``spec`` and of each part used here, their types, the enumerations of sampler types and
propagators, env entries that must have a name, quantities in resource lists; and from the webhook: a
``traceidratio`` sampler's argument is a number from 0 to 1. Like the API server with a structural schema
and kubectl's strict field validation, an unknown field is an error. ``spec``'s parts for other languages
(Java, Node.js, .NET, Go, Apache, nginx) are only checked to be objects: the component configures Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

API_VERSION = "opentelemetry.io/v1alpha1"

SAMPLER_TYPES = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
                 "parentbased_traceidratio", "jaeger_remote", "xray")
PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none")

# A Kubernetes quantity as serialized: a signed decimal number, then a binary (Ki..Ei) or decimal
# (n, u, m, k, M..E) suffix, or a decimal exponent.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_QUANTITY = re.compile(rf"{_NUMBER}(?:[KMGTPE]i|[numkMGTPE]|[eE]{_NUMBER})?")


def _quantity(value: str | int | float) -> str | int | float:
    if isinstance(value, str) and not _QUANTITY.fullmatch(value):
        raise ValueError(f"{value!r} is not a quantity")
    return value


Quantity = Annotated[str | int | float, AfterValidator(_quantity)]


class _Object(BaseModel):
    """An object of the schema: no field it does not define, no type coerced into another."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Metadata(BaseModel):
    """ObjectMeta: the API server checks it apart from the CRD's schema; a name is needed here."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class EnvVar(_Object):
    name: str
    value: str | None = None
    valueFrom: dict[str, Any] | None = None


class ResourceClaim(_Object):
    name: str
    request: str | None = None


class ResourceRequirements(_Object):
    claims: list[ResourceClaim] | None = None
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None


class Python(_Object):
    env: list[EnvVar] | None = None
    image: str | None = None
    resourceRequirements: ResourceRequirements | None = None
    volumeClaimTemplate: dict[str, Any] | None = None
    volumeLimitSize: Quantity | None = None


class TLS(_Object):
    secretName: str | None = None
    configMapName: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class Exporter(_Object):
    endpoint: str | None = None
    tls: TLS | None = None


class Resource(_Object):
    resourceAttributes: dict[str, str] | None = None
    addK8sUIDAttributes: bool | None = None


class Sampler(_Object):
    type: Literal[SAMPLER_TYPES] | None = None  # type: ignore[valid-type]
    argument: str | None = None

    @model_validator(mode="after")
    def _ratio(self) -> Sampler:
        if self.type in ("traceidratio", "parentbased_traceidratio") and self.argument:
            try:
                ratio = float(self.argument)
            except ValueError:
                raise ValueError(f"spec.sampler.argument is not a number: {self.argument}") from None
            if not 0 <= ratio <= 1:
                raise ValueError(f"spec.sampler.argument is not in [0..1]: {self.argument}")
        return self


class Defaults(_Object):
    useLabelsForResourceAttributes: bool | None = None


class Spec(_Object):
    exporter: Exporter | None = None
    resource: Resource | None = None
    propagators: list[Literal[PROPAGATORS]] | None = None  # type: ignore[valid-type]
    sampler: Sampler | None = None
    defaults: Defaults | None = None
    env: list[EnvVar] | None = None
    python: Python | None = None
    java: dict[str, Any] | None = None
    nodejs: dict[str, Any] | None = None
    dotnet: dict[str, Any] | None = None
    go: dict[str, Any] | None = None
    apacheHttpd: dict[str, Any] | None = None
    nginx: dict[str, Any] | None = None
    imagePullPolicy: str | None = None
    initContainerSecurityContext: dict[str, Any] | None = None


class Instrumentation(_Object):
    apiVersion: Literal["opentelemetry.io/v1alpha1"]
    kind: Literal["Instrumentation"]
    metadata: Metadata
    spec: Spec = Field(default_factory=Spec)
    status: dict[str, Any] | None = None


def problems(doc: dict[str, Any]) -> list[str]:
    """What the CRD's schema and the Operator's webhook refuse in ``doc``, one line each (location: message)."""
    try:
        Instrumentation.model_validate(doc)
    except ValidationError as error:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
    return []
