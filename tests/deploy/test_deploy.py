"""Offline checks of deploy/: the image, the compose file and the Kubernetes manifests.

Nothing here builds or runs a container. The checks are:

- the manifests validate against the Kubernetes OpenAPI schemas (``kubernetes-validate``,
  strict mode);
- the Dockerfile, compose file, Deployment and Service agree on one port;
- the probes call routes that exist in the app and need no token;
- every ``BELONG_*`` name in the ConfigMap, compose file and README is a real setting;
- Prometheus (through the Operator's ServiceMonitor or a hand-written scrape job) scrapes
  every API pod's ``/metrics`` with a ``metrics:read`` token read from a Secret;
- nothing secret is committed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
K8S = DEPLOY / "k8s"
MONITORING = K8S / "monitoring"
SCRAPE_JOB = DEPLOY / "prometheus" / "scrape-belong.yaml"
METRICS_SECRET = {"name": "belong-metrics", "key": "token"}
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
README = DEPLOY / "README.md"

# The oldest Kubernetes minor these manifests target (HPA autoscaling/v2, PDB policy/v1
# and a preStop hook all exist there) and the newest that kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

APP_PORT = 8000
SETTINGS_ENV = {f"BELONG_{name.upper()}" for name in Settings.__struct_fields__}
# BELONG_* names that the container reads and Settings does not.
CONTAINER_ENV = {"BELONG_WORKERS"}
BELONG_NAME = re.compile(r"\bBELONG_[A-Z0-9_]+\b")
LABEL = {"app.kubernetes.io/name": "belong"}


# --------------------------------------------------------------------------- helpers


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec (JSON) form: {arguments}"
    return [str(part) for part in value]


def command_words(argv: list[str]) -> list[str]:
    """The words of a command, looking inside ``sh -c "..."``."""
    if len(argv) >= 3 and argv[0] in {"sh", "/bin/sh", "bash"} and argv[1] == "-c":
        words = shlex.split(argv[2])
        return words[1:] if words and words[0] == "exec" else words
    return argv


def option(words: list[str], name: str) -> str:
    assert name in words, f"{name} missing from {words}"
    return words[words.index(name) + 1]


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                yield path, document


def one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    matching = [c for c in containers if c["name"] == name]
    assert matching, f"no container {name!r} in {workload['metadata']['name']}"
    return matching[0]


def resolve_port(port: int | str, api: dict[str, Any]) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in api.get("ports", []) if "name" in p}
    assert port in named, f"port name {port!r} is not a container port ({named})"
    return named[port]


def readme_table(heading: str) -> dict[str, list[str]]:
    """The first Markdown table after ``heading``: backticked first cell -> the cells."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    rows: dict[str, list[str]] = {}
    started = False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            started = True
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            name = re.fullmatch(r"`([A-Z0-9_]+)`", cells[0])
            if name:
                rows[name.group(1)] = cells
        elif started:
            break
    assert rows, f"no table of variables after {heading!r}"
    return rows


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runtime() -> list[tuple[str, str]]:
    all_stages = stages(dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8")))
    assert len(all_stages) >= 2, "the Dockerfile should be multi-stage"
    return all_stages[-1]


@pytest.fixture(scope="module")
def serve_command(runtime: list[tuple[str, str]]) -> list[str]:
    [cmd] = [args for keyword, args in runtime if keyword == "CMD"]
    words = command_words(exec_form(cmd))
    assert words[:2] == ["belong", "serve"], f"CMD does not run belong serve: {words}"
    return words


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def routes() -> dict[str, list[Any]]:
    from service.app import create_app

    # No database is opened to build the routes (and none is started: the URL is given).
    app = create_app(Settings(database_url="postgresql+asyncpg://unused@localhost/none"))
    return {route.path: list(route.route_handlers) for route in app.routes}


@pytest.fixture(scope="module")
def api() -> dict[str, Any]:
    return container(one("Deployment"), "api")


# --------------------------------------------------------------------------- Kubernetes


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(version: str) -> None:
    shipped = kubernetes_validate.utils.all_versions()
    assert version in shipped, f"kubernetes-validate ships {shipped}, not {version}"
    kinds = set()
    problems: list[str] = []
    for path, document in manifests():
        kinds.add(document["kind"])
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{path.name}: {document['kind']} at {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{path.name}: {exc.message}")
    # Reported outside the except blocks: the exceptions carry the whole schema.
    assert not problems, "\n".join(problems)
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "NetworkPolicy",
    }


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomization_renders() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(list(manifests()))


def test_manifests_are_namespace_free_and_labelled() -> None:
    for path, document in manifests():
        metadata = document["metadata"]
        assert "namespace" not in metadata, f"{path.name} sets a namespace"
        assert LABEL.items() <= metadata.get("labels", {}).items(), path.name
        template = document.get("spec", {}).get("template")
        if template:
            assert LABEL.items() <= template["metadata"]["labels"].items(), path.name


def test_no_secret_objects_or_values_in_manifests() -> None:
    for path, document in manifests():
        assert document["kind"] != "Secret", f"{path.name}: Secrets are created by hand"
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"[a-z+]+://[^/\s:@]+:[^/\s@]+@", text), (
            f"{path.name}: a URL with a password"
        )
    for workload in (one("Deployment"), one("Job")):
        for spec in workload["spec"]["template"]["spec"]["containers"]:
            env = {item["name"]: item for item in spec.get("env", [])}
            url = env["BELONG_DATABASE_URL"]
            assert "value" not in url
            assert url["valueFrom"]["secretKeyRef"] == {"name": "belong-database", "key": "url"}


def test_deployment(api: dict[str, Any], serve_command: list[str]) -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    assert [p["containerPort"] for p in api["ports"]] == [APP_PORT]
    assert {"configMapRef": {"name": "belong-config"}} in api["envFrom"]

    probes = {kind: api[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")}
    assert probes["liveness"]["path"] == "/health/live"
    assert probes["startup"]["path"] == "/health/live"
    assert probes["readiness"]["path"] == "/health/ready"
    for probe in probes.values():
        assert resolve_port(probe["port"], api) == APP_PORT

    resources = api["resources"]
    assert resources["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert resources["limits"] == {"cpu": "1", "memory": "512Mi"}

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    tmp = [m for m in api["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp, "read-only root filesystem needs a writable /tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[tmp[0]["name"]]

    # Shutdown: the preStop pause plus granian's drain must fit in the grace period.
    assert pod["terminationGracePeriodSeconds"] == 40
    assert api["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    graceful = int(option(serve_command, "--graceful-timeout"))
    assert 5 + graceful < pod["terminationGracePeriodSeconds"]


def test_pods_run_as_the_image_user(runtime: list[tuple[str, str]]) -> None:
    [user] = [args for keyword, args in runtime if keyword == "USER"]
    uid = int(user.split(":")[0])
    for workload in (one("Deployment"), one("Job")):
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_service_hpa_pdb_and_networkpolicy_target_the_api(api: dict[str, Any]) -> None:
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    service = one("Service")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["port"] == 80
    assert resolve_port(port["targetPort"], api) == APP_PORT

    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}

    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    policy = one("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    [ingress] = policy["ingress"]
    assert [(p["protocol"], p["port"]) for p in ingress["ports"]] == [("TCP", APP_PORT)]
    peers = ingress["from"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ehr-integration"}}} in peers
    assert any("namespaceSelector" in peer and "podSelector" not in peer for peer in peers)
    # Prometheus: its own pods in its own namespace (both selectors in one peer: and).
    scrapers = [peer for peer in peers if "namespaceSelector" in peer and "podSelector" in peer]
    assert scrapers == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    # PostgreSQL, DNS, and the handout link messages: SMTP submission and the SMS webhook.
    assert egress_ports == {
        ("TCP", 5432),
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 587),
        ("TCP", 465),
        ("TCP", 443),
    }


# --------------------------------------------------------------------------- Prometheus


def test_metrics_route_needs_the_metrics_scope(routes: dict[str, list[Any]]) -> None:
    [handler] = [h for h in routes["/metrics"] if "GET" in h.http_methods]
    assert handler.opt.get("scope") == "metrics:read"
    assert not handler.opt.get("exclude_from_auth")


def test_service_monitor_scrapes_the_api_with_the_metrics_token() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text(encoding="utf-8"))
    on_disk = sorted(p.name for p in MONITORING.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == on_disk == ["servicemonitor.yaml"]
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text(encoding="utf-8"))
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    assert "namespace" not in monitor["metadata"]
    assert LABEL.items() <= monitor["metadata"]["labels"].items()

    # A ServiceMonitor selects Services by their labels and scrapes a named Service port on
    # each of the Service's endpoints, that is on every API pod.
    service = one("Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert selector.items() <= service["spec"]["selector"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": METRICS_SECRET}
    assert not {"bearerTokenFile", "bearerTokenSecret", "basicAuth"} & endpoint.keys()


def test_hand_written_scrape_job_keeps_only_the_api_pods(api: dict[str, Any]) -> None:
    config = yaml.safe_load(SCRAPE_JOB.read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    # The Secret mounted where the Prometheus Operator's spec.secrets mounts it; never inline.
    secret_file = "/etc/prometheus/secrets/{name}/{key}".format(**METRICS_SECRET)
    assert job["authorization"] == {"type": "Bearer", "credentials_file": secret_file}
    [discovery] = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"

    keep = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    names = ("app.kubernetes.io/name", "app.kubernetes.io/component")
    sources = tuple("__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", n) for n in names)
    kept = re.compile(keep[sources])

    def pod_labels(workload: str) -> str:
        labels = one(workload)["spec"]["template"]["metadata"]["labels"]
        return ";".join(labels.get(name, "") for name in names)

    assert kept.fullmatch(pod_labels("Deployment"))
    assert not kept.fullmatch(pod_labels("Job"))
    port = re.compile(keep[("__meta_kubernetes_pod_container_port_name",)])
    assert [p["name"] for p in api["ports"] if port.fullmatch(p["name"])] == ["http"]


def test_readme_says_how_prometheus_gets_its_token() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Metrics (Prometheus)") : text.index("## Settings")]
    assert "--scope metrics:read" in section
    assert "create secret generic belong-metrics --from-file=token=" in section
    assert "apply -k deploy/k8s/monitoring" in section
    assert SCRAPE_JOB.relative_to(DEPLOY).as_posix() in section


def test_readme_lists_every_scope() -> None:
    from service.platform.credentials import SCOPES

    text = README.read_text(encoding="utf-8")
    listed = re.search(r"^Scopes: (.*?)\. Repeat", text, re.MULTILINE | re.DOTALL)
    assert listed, "the README lists no scopes"
    assert re.findall(r"`([a-z]+:[a-z]+)`", listed.group(1)) == list(SCOPES)


def test_migration_job() -> None:
    job = one("Job")
    assert job["metadata"]["name"] == "belong-migrate"
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    migrate = container(job, "migrate")
    # args, not command: the image's ENTRYPOINT (tini) stays in front.
    assert "command" not in migrate
    assert migrate["args"] == ["belong", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_configmap_names_only_settings() -> None:
    config = one("ConfigMap")
    assert config["metadata"]["name"] == "belong-config"
    keys = set(config["data"])
    assert keys <= SETTINGS_ENV, f"not settings: {sorted(keys - SETTINGS_ENV)}"
    assert "BELONG_DATABASE_URL" not in keys, "the database URL belongs in the Secret"
    for value in config["data"].values():
        assert isinstance(value, str)


def assert_parses(environment: dict[str, str]) -> None:
    """Settings.from_env accepts every value (it stops with SystemExit on one it cannot)."""
    settings = Settings.from_env(environment)
    for name, value in environment.items():
        if name not in SETTINGS_ENV:
            continue
        parsed = getattr(settings, name.removeprefix("BELONG_").lower())
        if isinstance(parsed, int | float) and not isinstance(parsed, bool):
            assert parsed == float(value), name


def test_configmap_values_parse_as_settings() -> None:
    assert_parses(one("ConfigMap")["data"])


def test_compose_defaults_parse_as_settings(compose: dict[str, Any]) -> None:
    default = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")
    environment = {
        key: default.sub(r"\1", str(value))
        for key, value in compose["services"]["api"]["environment"].items()
        if key != "BELONG_DATABASE_URL"
    }
    assert all("${" not in value for value in environment.values()), environment
    assert_parses(environment)


def test_deployment_env_names_are_known(api: dict[str, Any]) -> None:
    names = {item["name"] for item in api.get("env", [])}
    unknown = {n for n in names if n.startswith("BELONG_")} - SETTINGS_ENV - CONTAINER_ENV
    assert not unknown


# --------------------------------------------------------------------------- Dockerfile


def test_image_serves_on_the_exposed_port(
    runtime: list[tuple[str, str]], serve_command: list[str], api: dict[str, Any]
) -> None:
    exposed = [int(p.split("/")[0]) for k, a in runtime if k == "EXPOSE" for p in a.split()]
    assert exposed == [APP_PORT]
    assert int(option(serve_command, "--port")) == APP_PORT
    assert option(serve_command, "--host") == "0.0.0.0"
    assert option(serve_command, "--workers") == "${BELONG_WORKERS:-2}"
    assert api["ports"][0]["containerPort"] == APP_PORT


def test_image_runs_tini_as_a_non_root_user(runtime: list[tuple[str, str]]) -> None:
    [entrypoint] = [exec_form(a) for k, a in runtime if k == "ENTRYPOINT"]
    assert Path(entrypoint[0]).name == "tini"
    assert entrypoint[1:] == ["--"]
    installs = " ".join(a for k, a in runtime if k == "RUN")
    assert re.search(r"apt-get install .*\btini\b", installs)

    users = [a for k, a in runtime if k == "USER"]
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"


def test_image_base_env_and_healthcheck(runtime: list[tuple[str, str]]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert runtime[0][1].startswith("${PYTHON_IMAGE}")

    env = " ".join(a for k, a in runtime if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env

    [healthcheck] = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck
    assert f"http://127.0.0.1:{APP_PORT}/health/live" in healthcheck
    for keyword, arguments in runtime:
        if keyword in {"RUN", "HEALTHCHECK", "CMD"}:
            assert "curl" not in arguments, "the image has no curl"


def test_image_keeps_the_project_root_layout() -> None:
    """service/settings.py finds schemas/ and migrations/ beside service/ (PROJECT_ROOT)."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    builder, runtime = stages(instructions)[0], stages(instructions)[-1]
    copied = {a.split()[0] for k, a in builder if k == "COPY"}
    assert {"service/", "migrations/", "schemas/", "pyproject.toml"} <= copied
    for source in copied:
        assert (PROJECT_ROOT / source).exists(), source
    assert ("WORKDIR", "/app") in builder
    assert any(k == "RUN" and "pip install --editable ." in a for k, a in builder)
    assert ("COPY", "--from=builder /app /app") in runtime
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime

    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for source in copied:
        assert f"!{source}" in ignore, f"{source} is excluded from the build context"


def test_image_holds_no_secrets() -> None:
    for keyword, arguments in dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", arguments, re.I), arguments


# --------------------------------------------------------------------------- compose


def test_compose_services_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "migrate", "api"}

    db = services["db"]
    assert db["image"] == "postgres:15"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "the database volume should be a named volume"

    migrate = services["migrate"]
    assert migrate["command"] == ["belong", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}

    api = services["api"]
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert migrate["image"] == api["image"]
    for service in (migrate, api):
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}


def test_compose_api_port_and_healthcheck(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    [mapping] = api["ports"]
    assert int(str(mapping).split(":")[-1]) == APP_PORT
    check = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{APP_PORT}/health/live" in check
    assert "urllib" in check


def test_compose_database_url_and_no_literal_secrets(compose: dict[str, Any]) -> None:
    url = compose["services"]["api"]["environment"]["BELONG_DATABASE_URL"]
    assert re.fullmatch(
        r"postgresql\+asyncpg://belong:\$\{POSTGRES_PASSWORD:\?[^}]*\}@db:5432/belong", url
    )
    interpolated = re.compile(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}")
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use a mapping for environment"
        for key, value in environment.items():
            value = str(value)
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert interpolated.fullmatch(value), f"{name}.{key} holds a literal value"
            credentials = re.search(r"://[^/:@]+:([^@]+)@", value)
            if credentials:
                assert interpolated.fullmatch(credentials.group(1)), f"{name}.{key}"
        names = {k for k in environment if k.startswith("BELONG_")}
        assert names <= SETTINGS_ENV | CONTAINER_ENV, f"{name}: {names - SETTINGS_ENV}"
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored, "deploy/.env holds the password: git must ignore it"


# --------------------------------------------------------------------------- the app


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_probe_paths_are_public_get_routes(routes: dict[str, list[Any]], path: str) -> None:
    assert path in routes, f"{path} is not a route of the app"
    gets = [h for h in routes[path] if "GET" in h.http_methods]
    assert gets, f"{path} has no GET handler"
    for handler in gets:
        assert handler.opt.get("exclude_from_auth") is True, f"{path} needs a token"


def test_every_probe_path_in_deploy_is_a_route(routes: dict[str, list[Any]]) -> None:
    texts = [DOCKERFILE, COMPOSE, *sorted(K8S.glob("*.yaml"))]
    paths = {m for p in texts for m in re.findall(r"/health/\w+", p.read_text(encoding="utf-8"))}
    assert paths == {"/health/live", "/health/ready"}
    assert paths <= routes.keys()


# --------------------------------------------------------------------------- settings docs


def test_readme_settings_table_matches_settings() -> None:
    table = readme_table("## Settings")
    assert set(table) == SETTINGS_ENV


def test_readme_defaults_match_settings() -> None:
    table = readme_table("## Settings")
    defaults = Settings()
    for field in Settings.__struct_fields__:
        value = getattr(defaults, field)
        documented = table[f"BELONG_{field.upper()}"][1]
        if isinstance(value, bool):
            assert documented == f"`{str(value).lower()}`", field
        elif isinstance(value, int | float | str):
            assert documented == f"`{value}`", field


def test_readme_names_only_real_variables() -> None:
    text = README.read_text(encoding="utf-8")
    names = set(BELONG_NAME.findall(text))
    assert names <= SETTINGS_ENV | CONTAINER_ENV, sorted(names - SETTINGS_ENV - CONTAINER_ENV)
    assert set(readme_table("Container variable")) == CONTAINER_ENV


def test_container_variables_are_used_by_the_image(serve_command: list[str]) -> None:
    for name in CONTAINER_ENV:
        assert any(name in word for word in serve_command), name
    for path in (DOCKERFILE, COMPOSE, *sorted(K8S.glob("*.yaml"))):
        names = set(BELONG_NAME.findall(path.read_text(encoding="utf-8")))
        assert names <= SETTINGS_ENV | CONTAINER_ENV, (path.name, names - SETTINGS_ENV)
