"""The deployment files hold together: compose, Kubernetes manifests, alert rules, Dockerfile."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
YAML_FILES = [DEPLOY / "compose.yaml", DEPLOY / "alerts.yaml", *K8S_FILES]
OWN_FILES = [DEPLOY / "Dockerfile", *YAML_FILES]

METRICS = {
    "tierbot_provider_requests_total", "tierbot_first_token_seconds_bucket",
    "tierbot_tier_ttft_slo_seconds", "tierbot_queue_oldest_pending_age_seconds",
    "tierbot_queue_depth", "tierbot_dead_letters_total", "tierbot_queue_dropped_pending_total",
    "tierbot_cost_usd_total", "tierbot_escalations_total", "tierbot_breaker_state",
}  # fmt: skip
"""The metric names the alerts and the worker HPA use; the metrics module must export these."""

PUBLIC_PORT, ADMIN_PORT = 8080, 8081
PLACEHOLDER = "change-me"
OUR_VARIABLE = re.compile(
    r"\b(?:TIERBOT_[A-Z0-9_]*[A-Z0-9]|REDIS_URL|DATABASE_URL"
    r"|(?:OPENAI|ANTHROPIC|GROQ|TELEGRAM|WHATSAPP)_[A-Z0-9_]*[A-Z0-9])\b"
)
REAL_LOOKING_SECRETS = re.compile(
    r"sk-[A-Za-z0-9_-]{20,}|gsk_[A-Za-z0-9]{20,}|\b[0-9]{6,12}:[A-Za-z0-9_-]{30,}"
    r"|\bEAA[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


# --- typed access to parsed YAML -------------------------------------------------------------


def _map(value: object) -> dict[str, object]:
    assert isinstance(value, dict), f"expected a mapping, got {value!r}"
    return {str(k): v for k, v in value.items()}


def _list(value: object) -> list[object]:
    assert isinstance(value, list), f"expected a list, got {value!r}"
    return value


def _str(value: object) -> str:
    assert isinstance(value, str), f"expected a string, got {value!r}"
    return value


def _at(value: object, *path: str) -> object:
    for key in path:
        value = _map(value)[key]
    return value


def _documents(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as stream:
        return [_map(doc) for doc in yaml.safe_load_all(stream) if doc is not None]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses_to_mappings(path: Path) -> None:
    assert _documents(path) != []


# --- compose ---------------------------------------------------------------------------------

COMPOSE = _documents(DEPLOY / "compose.yaml")[0]
SERVICES = {name: _map(spec) for name, spec in _map(COMPOSE["services"]).items()}
TIERBOT = {name: spec for name, spec in SERVICES.items() if "build" in spec}


def _role(service: dict[str, object]) -> str:
    command = [_str(arg) for arg in _list(service["command"])]
    assert command[0] == "serve"
    return command[command.index("--role") + 1]


def _published(spec: object) -> tuple[str, int]:
    """(host address, container port) of one `ports:` entry, short or long syntax."""
    if isinstance(spec, dict):
        return str(spec.get("host_ip", "0.0.0.0")), int(spec["target"])
    parts = str(spec).split("/")[0].rsplit(":", 2)
    host = parts[0].strip("[]") if len(parts) == 3 else "0.0.0.0"
    return host, int(parts[-1])


def test_compose_runs_two_web_and_two_worker_processes_from_the_image() -> None:
    roles = sorted(_role(spec) for spec in TIERBOT.values())
    assert roles == ["web", "web", "worker", "worker"]
    build = {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert all(spec["build"] == build for spec in TIERBOT.values())
    assert set(SERVICES) - set(TIERBOT) == {"redis", "postgres"}


def test_compose_stores_keep_their_data_redis_in_an_append_only_file() -> None:
    redis, postgres = SERVICES["redis"], SERVICES["postgres"]
    command = " ".join(_str(arg) for arg in _list(redis["command"]))
    assert "--appendonly yes" in command
    assert re.search(r"--appendfsync (everysec|always)\b", command)
    assert "--maxmemory-policy noeviction" in command
    assert any(_str(v).endswith(":/data") for v in _list(redis["volumes"]))
    assert any(_str(v).endswith(":/var/lib/postgresql/data") for v in _list(postgres["volumes"]))
    password = _str(_at(postgres, "environment", "POSTGRES_PASSWORD"))
    assert password.startswith("${POSTGRES_PASSWORD")  # from deploy/.env, never written here


def test_compose_publishes_only_the_public_port_and_only_on_loopback() -> None:
    published = {
        name: [_published(spec) for spec in _list(service.get("ports", []))]
        for name, service in SERVICES.items()
    }
    assert {name for name, ports in published.items() if ports} == {
        name for name, spec in TIERBOT.items() if _role(spec) == "web"
    }
    assert {p for ports in published.values() for p in ports} <= {("127.0.0.1", PUBLIC_PORT)}
    assert all("network_mode" not in service for service in SERVICES.values())


def test_compose_tierbot_services_read_env_and_reach_the_compose_stores() -> None:
    for spec in TIERBOT.values():
        assert spec["env_file"] in (".env", [".env"])
        env = _map(spec["environment"])
        assert _str(env["REDIS_URL"]).startswith("redis://redis:6379/")
        assert re.fullmatch(
            r"postgresql\+asyncpg://tierbot:\$\{POSTGRES_PASSWORD[^}]*\}@postgres:5432/tierbot",
            _str(env["DATABASE_URL"]),
        )
        assert _map(spec["depends_on"]) == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_has_a_healthcheck_and_a_restart_policy(name: str) -> None:
    service = SERVICES[name]
    test = [_str(arg) for arg in _list(_at(service, "healthcheck", "test"))]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert service["restart"] in ("always", "unless-stopped", "on-failure")
    if name in TIERBOT:
        port = PUBLIC_PORT if _role(service) == "web" else ADMIN_PORT
        assert f"127.0.0.1:{port}/healthz" in test[-1]


# --- Kubernetes ------------------------------------------------------------------------------

MANIFESTS = [doc for path in K8S_FILES for doc in _documents(path)]


def _obj(required: str, **properties: object) -> dict[str, object]:
    """A JSON Schema of an object: the space-separated required keys, and property schemas."""
    return {"type": "object", "required": required.split(), "properties": properties}


def _const(value: object) -> dict[str, object]:
    return {"const": value}


def _array(items: object) -> dict[str, object]:
    return {"type": "array", "minItems": 1, "items": items}


def _probe(path: str) -> dict[str, object]:
    return _obj("httpGet", httpGet=_obj("path port", path=_const(path)))


_CONTAINER = _obj(
    "name image args envFrom resources securityContext startupProbe readinessProbe livenessProbe",
    startupProbe=_probe("/healthz"),
    readinessProbe=_probe("/readyz"),
    livenessProbe=_probe("/healthz"),
    resources=_obj("requests limits", requests=_obj("cpu memory"), limits=_obj("memory")),
    securityContext=_obj(
        "runAsNonRoot allowPrivilegeEscalation readOnlyRootFilesystem capabilities",
        runAsNonRoot=_const(True),
        allowPrivilegeEscalation=_const(False),
        readOnlyRootFilesystem=_const(True),
        capabilities=_obj("drop", drop={"contains": _const("ALL")}),
    ),
)
_POD = _obj(
    "containers securityContext terminationGracePeriodSeconds",
    securityContext=_obj(
        "runAsNonRoot runAsUser", runAsNonRoot=_const(True), runAsUser={"minimum": 1}
    ),
    containers=_array(_CONTAINER),
)
_METRIC = {
    "oneOf": [
        _obj("type resource", type=_const("Resource"), resource=_obj("name target")),
        _obj("type external", type=_const("External"), external=_obj("metric target")),
        _obj("type pods", type=_const("Pods"), pods=_obj("metric target")),
    ]
}
_KINDS = {
    "Deployment": _obj(
        "spec",
        apiVersion=_const("apps/v1"),
        spec={
            **_obj("selector template", template=_obj("metadata spec", spec=_POD)),
            "not": {"required": ["replicas"]},  # the HorizontalPodAutoscaler owns the count
        },
    ),
    "Service": _obj(
        "spec",
        apiVersion=_const("v1"),
        spec=_obj(
            "selector ports",
            ports=_array(
                _obj("name port targetPort", targetPort={"not": {"enum": [ADMIN_PORT, "admin"]}})
            ),
        ),
    ),
    "HorizontalPodAutoscaler": _obj(
        "spec",
        apiVersion=_const("autoscaling/v2"),
        spec=_obj(
            "scaleTargetRef minReplicas maxReplicas metrics",
            minReplicas={"minimum": 2},
            metrics=_array(_METRIC),
        ),
    ),
    "PodDisruptionBudget": _obj("spec", apiVersion=_const("policy/v1"), spec=_obj("selector")),
    "NetworkPolicy": _obj(
        "spec", apiVersion=_const("networking.k8s.io/v1"), spec=_obj("podSelector policyTypes")
    ),
    "ConfigMap": _obj(
        "data",
        apiVersion=_const("v1"),
        data={  # knobs only: credentials belong in the Secret
            "propertyNames": {"pattern": "^TIERBOT_[A-Z0-9_]+$"},
            "additionalProperties": {"type": "string"},
        },
    ),
    "Secret": {
        **_obj(
            "stringData",
            apiVersion=_const("v1"),
            type=_const("Opaque"),
            stringData={"additionalProperties": {"type": "string", "pattern": PLACEHOLDER}},
        ),
        "not": {"required": ["data"]},  # base64 could hide a real value
    },
}
MANIFEST_SCHEMA = {
    **_obj(
        "apiVersion kind metadata",
        kind={"enum": list(_KINDS)},
        metadata=_obj(
            "name labels",
            name={"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
            labels={"type": "object", "additionalProperties": {"type": "string"}},
        ),
    ),
    "allOf": [{"if": _obj("kind", kind=_const(k)), "then": s} for k, s in _KINDS.items()],
}


def _named(kind: str, name: str) -> dict[str, object]:
    found = [m for m in MANIFESTS if m["kind"] == kind and _at(m, "metadata", "name") == name]
    assert len(found) == 1, f"expected one {kind} {name}"
    return found[0]


@pytest.mark.parametrize(
    "manifest", MANIFESTS, ids=lambda m: f"{m.get('kind')}/{_at(m, 'metadata', 'name')}"
)
def test_manifest_matches_the_structural_schema(manifest: dict[str, object]) -> None:
    jsonschema.validate(manifest, MANIFEST_SCHEMA)


_DELETE = object()
_C = "spec/template/spec/containers/0/"


@pytest.mark.parametrize(
    ("kind", "name", "pointer", "value"),
    [
        ("Deployment", "tierbot-web", _C + "readinessProbe", _DELETE),
        ("Deployment", "tierbot-web", _C + "livenessProbe/httpGet/path", "/readyz"),
        ("Deployment", "tierbot-worker", "spec/template/spec/securityContext/runAsNonRoot", False),
        ("Deployment", "tierbot-worker", _C + "securityContext/allowPrivilegeEscalation", True),
        ("Deployment", "tierbot-web", "spec/replicas", 3),
        ("Service", "tierbot-web", "spec/ports/0/targetPort", "admin"),
        ("Secret", "tierbot-secrets", "stringData/OPENAI_API_KEY", "sk-proj-0123456789"),
        ("ConfigMap", "tierbot-config", "data/OPENAI_API_KEY", "change-me"),
        ("HorizontalPodAutoscaler", "tierbot-worker", "spec/metrics/0/type", "Pods"),
    ],
)  # fmt: skip
def test_schema_rejects_an_unsafe_manifest(
    kind: str, name: str, pointer: str, value: object
) -> None:
    manifest = copy.deepcopy(_named(kind, name))
    *path, last = pointer.split("/")
    parent: object = manifest
    for key in path:
        parent = parent[int(key)] if isinstance(parent, list) else _map(parent)[key]
    assert isinstance(parent, dict)
    if value is _DELETE:
        del parent[last]
    else:
        parent[last] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, MANIFEST_SCHEMA)


@pytest.mark.parametrize(
    ("role", "port", "grace"),
    [
        ("web", PUBLIC_PORT, "TIERBOT_API_SHUTDOWN_GRACE_SECONDS"),
        ("worker", ADMIN_PORT, "TIERBOT_WORKER_SHUTDOWN_GRACE_SECONDS"),
    ],
)
def test_deployment_runs_its_role_probes_its_listener_and_drains(
    role: str, port: int, grace: str
) -> None:
    deployment = _named("Deployment", f"tierbot-{role}")
    pod = _map(_at(deployment, "spec", "template", "spec"))
    container = _map(_list(pod["containers"])[0])
    assert container["args"] == ["serve", "--role", role, "--host", "0.0.0.0"]
    ports = {_str(p["name"]): p["containerPort"] for p in map(_map, _list(container["ports"]))}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ports[_str(_at(container, probe, "httpGet", "port"))] == port
    labels = _map(_at(deployment, "spec", "template", "metadata", "labels"))
    assert _map(_at(deployment, "spec", "selector", "matchLabels")).items() <= labels.items()
    assert container["envFrom"] == [
        {"configMapRef": {"name": _at(_named("ConfigMap", "tierbot-config"), "metadata", "name")}},
        {"secretRef": {"name": _at(_named("Secret", "tierbot-secrets"), "metadata", "name")}},
    ]
    config = _map(_at(_named("ConfigMap", "tierbot-config"), "data"))
    period = pod["terminationGracePeriodSeconds"]
    assert isinstance(period, int)
    assert period >= float(_str(config[grace])) + 10  # a preStop pause and a margin


def test_web_service_exposes_the_public_port_of_the_web_pods_only() -> None:
    service = _named("Service", "tierbot-web")
    ports = [_map(p) for p in _list(_at(service, "spec", "ports"))]
    assert [p["targetPort"] for p in ports] == ["http"]
    web = _named("Deployment", "tierbot-web")
    assert _at(service, "spec", "selector") == _at(web, "spec", "selector", "matchLabels")
    container = _list(_at(web, "spec", "template", "spec", "containers"))[0]
    assert _at(_list(_map(container)["ports"])[0], "containerPort") == PUBLIC_PORT


def test_worker_autoscales_on_queue_lag_and_web_on_cpu() -> None:
    worker = _named("HorizontalPodAutoscaler", "tierbot-worker")
    assert _at(worker, "spec", "scaleTargetRef", "name") == "tierbot-worker"
    names = {
        _str(_at(_map(m)[_str(_map(m)["type"]).lower()], "metric", "name"))
        for m in _list(_at(worker, "spec", "metrics"))
    }
    assert names == {"tierbot_queue_oldest_pending_age_seconds", "tierbot_queue_depth"}
    web = _named("HorizontalPodAutoscaler", "tierbot-web")
    assert _at(web, "spec", "scaleTargetRef", "name") == "tierbot-web"
    [cpu] = _list(_at(web, "spec", "metrics"))
    assert _at(cpu, "resource", "name") == "cpu"


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_no_real_looking_secret_in_deploy_files(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert REAL_LOOKING_SECRETS.findall(text) == []
    passwords = re.findall(r"://[^:/@\s]*:([^@\s]+)@", text)
    assert [p for p in passwords if p != PLACEHOLDER and not p.startswith("${")] == []


# --- alert rules -----------------------------------------------------------------------------

RULES = [
    _map(r)
    for g in _list(_documents(DEPLOY / "alerts.yaml")[0]["groups"])
    for r in _list(_map(g)["rules"])
]
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp_max", "clamp_min", "count", "count_over_time", "delta", "deriv", "floor", "group",
    "histogram_quantile", "increase", "irate", "label_replace", "max", "max_over_time", "min",
    "min_over_time", "predict_linear", "quantile", "rate", "resets", "round", "scalar", "sum",
    "sum_over_time", "time", "topk", "vector",
}  # fmt: skip
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset",
}  # fmt: skip
_TOKEN = re.compile(r"\d+(?:ms|[smhdwy])\b|\d+(?:\.\d+)?(?:e[+-]?\d+)?|([A-Za-z_:][A-Za-z0-9_:]*)")


def promql_problems(expr: str) -> list[str]:
    """What makes `expr` implausible PromQL: unbalanced brackets, unknown names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    problems, stack = [], []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            problems.append(f"unbalanced {char!r}")
    problems += [f"unclosed {c!r}" for c in stack]
    text = re.sub(r"\{[^{}]*\}|\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    metrics = 0
    for match in _TOKEN.finditer(text):
        name = match.group(1)
        if name is None or name in KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            problems += [] if name in FUNCTIONS else [f"unknown function {name}"]
        else:
            metrics += 1
            problems += [] if name in METRICS else [f"unknown metric {name}"]
    return problems + ([] if metrics else ["no metric"])


@pytest.mark.parametrize(
    "expr",
    ["sum(rate(tierbot_queue_depth[5m])", "max(tierbot_queue_depth)) > 1", "vector(1) > 0",
     "sum(rate(tierbot_queue_deph[5m])) > 0", "frobnicate(tierbot_queue_depth) > 0"],
)  # fmt: skip
def test_promql_check_rejects_implausible_expressions(expr: str) -> None:
    assert promql_problems(expr) != []


@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r.get("alert")))
def test_alert_rule_is_complete_and_plausible(rule: dict[str, object]) -> None:
    assert re.fullmatch(r"Tierbot[A-Z][A-Za-z]+", _str(rule["alert"]))
    assert re.fullmatch(r"\d+[smh]", _str(rule["for"]))
    assert _at(rule, "labels", "severity") in ("critical", "warning", "info")
    assert _str(_at(rule, "annotations", "summary")).strip()
    assert promql_problems(_str(rule["expr"])) == []


def test_alerts_cover_every_failure_and_use_every_metric() -> None:
    names = {_str(rule["alert"]) for rule in RULES}
    assert len(names) == len(RULES)
    assert {
        "TierbotProviderErrorRate", "TierbotTierTTFTSLOBreached", "TierbotQueueLag",
        "TierbotDeadLetters", "TierbotPendingEntryDropped", "TierbotSpendSpike",
    } <= names  # fmt: skip
    used = {m for rule in RULES for m in re.findall(r"tierbot_[a-z0-9_]+", _str(rule["expr"]))}
    assert used == METRICS


# --- Dockerfile ------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = [line.strip().split(None, 1) for line in joined.splitlines() if line.strip()]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


INSTRUCTIONS = _instructions()
FINAL_STAGE = INSTRUCTIONS[max(i for i, (op, _) in enumerate(INSTRUCTIONS) if op == "FROM") :]


def _args(op: str, stage: list[tuple[str, str]] = INSTRUCTIONS) -> list[str]:
    return [args for name, args in stage if name == op]


def test_dockerfile_copies_the_locked_venv_into_a_slim_image_run_as_non_root() -> None:
    stages = _args("FROM")
    assert len(stages) >= 2
    assert stages[-1].split()[0] == "python:3.11-slim"
    assert any("uv sync --locked --no-dev" in run for run in _args("RUN"))
    assert any(args.startswith("--from=") for args in _args("COPY", FINAL_STAGE))
    users = _args("USER", FINAL_STAGE)
    assert users != []
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_serves_the_public_port_and_checks_healthz_with_python() -> None:
    assert [json.loads(a) for a in _args("ENTRYPOINT")] == [["tierbot"]]
    assert [json.loads(a) for a in _args("CMD")] == [
        ["serve", "--role", "all", "--host", "0.0.0.0"]
    ]
    assert _args("EXPOSE") == [str(PUBLIC_PORT)]  # the admin port stays internal
    [check] = _args("HEALTHCHECK", FINAL_STAGE)
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]
    assert not re.search(r"\b(curl|wget)\b", check)


def test_dockerfile_bakes_in_no_secret() -> None:
    assert not any(re.match(r"(--\S+\s+)*https?://", a) for a in _args("ADD"))
    names = [
        token.split("=")[0]
        for op in ("ENV", "ARG")
        for args in _args(op)
        for token in (shlex.split(args) if "=" in args else shlex.split(args)[:1])
    ]
    secretive = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|_URL$")
    assert [n for n in names if secretive.search(n) or OUR_VARIABLE.fullmatch(n)] == []
    assert not any(re.search(r"(^|[\s/])\.env(\s|$)", a) for a in _args("COPY"))


# --- the README documents what the deploy files set ------------------------------------------


def test_every_variable_in_the_deploy_files_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    undocumented = {
        str(path.relative_to(DEPLOY)): sorted(set(OUR_VARIABLE.findall(text)) - documented)
        for path in OWN_FILES
        if (text := path.read_text(encoding="utf-8"))
    }
    assert {name: names for name, names in undocumented.items() if names} == {}
