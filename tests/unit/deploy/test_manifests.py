"""deploy/: the manifests validate offline (and broken ones do not), and they agree with the code: consumer
groups, topics, ports, settings, the image's user, the compose file's services, the alerts' metrics."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import validate
from mailroom.admin import STREAM_WORKERS
from runtime.settings import KafkaSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
WORKERS = ("ingest", "matcher", "converter", "responder")
COMPONENTS = (*WORKERS, "admin")
METRICS = {
    "mailroom_messages_in_total",
    "mailroom_messages_out_total",
    "mailroom_decisions_total",
    "mailroom_replies_total",
    "mailroom_records_created_total",
    "mailroom_dead_letters_total",
    "mailroom_consumer_lag",
    "mailroom_processing_seconds",
    "mailroom_ledger_catchup_seconds",
    "mailroom_ingest_mailboxes",
    "mailroom_ready",
}
"""The metrics the workers serve on /metrics."""
HISTOGRAMS = {"mailroom_processing_seconds", "mailroom_ledger_catchup_seconds"}


def _documents() -> list[dict[str, Any]]:
    paths = sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
    return [doc for path in paths for doc in validate.load_documents(path)]


DOCUMENTS = _documents()


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in DOCUMENTS if d["kind"] == kind and d["metadata"]["name"] == name]
    return copy.deepcopy(found)


def _settings() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap", "mailroom-settings")["data"]
    return data


def _kafka() -> KafkaSettings:
    s = _settings()
    return KafkaSettings(
        bootstrap_servers=s["MAILROOM_KAFKA_BOOTSTRAP_SERVERS"],
        partitions=int(s["MAILROOM_KAFKA_PARTITIONS"]),
        namespace=s["MAILROOM_KAFKA_NAMESPACE"],
    )


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


# Everything validates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_validates(path: Path) -> None:
    assert validate.validate_file(path) == []


def test_the_compose_file_validates() -> None:
    assert validate.validate_compose() == []


def test_the_command_checks_everything_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main([]) == 0
    out = capsys.readouterr().out
    count = len(list(K8S.glob("*.yaml"))) + 1  # and compose.yaml
    assert f"{count} files valid (Kubernetes {validate.KUBERNETES_VERSION}, strict)" in out


def test_a_kubernetes_release_without_schemas_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main(["--kubernetes-version", "9.99"]) == 2
    assert "carries no schemas for Kubernetes 9.99" in capsys.readouterr().err


def test_the_kinds_we_ship() -> None:
    kinds = sorted({(d["apiVersion"], d["kind"]) for d in DOCUMENTS})
    assert kinds == [
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("policy/v1", "PodDisruptionBudget"),
        ("v1", "ConfigMap"),
        ("v1", "Namespace"),
        ("v1", "Secret"),
        ("v1", "Service"),
    ]


# Broken manifests do not validate --------------------------------------------------------------------------


def test_a_deployment_with_an_unknown_field_fails() -> None:
    deployment = _one("Deployment", "mailroom-matcher")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    problems = validate.validate_resource(deployment)
    assert len(problems) == 1
    assert "spec.template.spec.containers.0" in problems[0]
    assert "'livenessProbes' was unexpected" in problems[0]


def test_a_deployment_with_a_wrong_type_fails() -> None:
    deployment = _one("Deployment", "mailroom-matcher")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9108"
    (problem,) = validate.validate_resource(deployment)
    assert "ports.0.containerPort" in problem
    assert "is not of type 'integer'" in problem


def test_a_scaled_object_without_trigger_metadata_fails() -> None:
    scaled = _one("ScaledObject", "mailroom-matcher")
    del scaled["spec"]["triggers"][0]["metadata"]
    assert validate.validate_resource(scaled) == ["spec.triggers.0: 'metadata' is a required property"]


def test_a_scaled_object_with_wrong_types_and_unknown_fields_fails_on_each() -> None:
    scaled = _one("ScaledObject", "mailroom-converter")
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 50  # KEDA wants strings
    scaled["spec"]["maxReplicaCount"] = "4"
    scaled["spec"]["scaleTargetRef"]["nam"] = "mailroom-converter"
    problems = validate.validate_resource(scaled)
    assert problems == [
        "spec.maxReplicaCount: '4' is not of type 'integer'",
        "spec.scaleTargetRef: Additional properties are not allowed ('nam' was unexpected)",
        "spec.triggers.0.metadata.lagThreshold: 50 is not of type 'string'",
    ]


def test_custom_resources_need_a_proper_name() -> None:
    scaled = _one("ScaledObject", "mailroom-responder")
    scaled["metadata"]["name"] = "Mailroom_Responder"
    (problem,) = validate.validate_resource(scaled)
    assert problem.startswith("metadata.name: 'Mailroom_Responder' does not match")


def test_an_alert_with_a_bad_duration_fails() -> None:
    rules = _one("PrometheusRule", "mailroom")
    rules["spec"]["groups"][0]["rules"][0]["for"] = "10 minutes"
    (problem,) = validate.validate_resource(rules)
    assert problem.startswith("spec.groups.0.rules.0.for: '10 minutes' does not match")


def test_an_unknown_kind_fails_rather_than_passing_unchecked() -> None:
    scaled = _one("ScaledObject", "mailroom-matcher")
    scaled["apiVersion"] = "keda.sh/v1beta9"
    (problem,) = validate.validate_resource(scaled)
    assert problem.startswith("no schema for ScaledObject keda.sh/v1beta9")


def test_the_command_names_the_broken_file_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _one("Deployment", "mailroom-responder")
    broken["spec"]["replicas"] = "two"
    path = tmp_path / "responder.yaml"
    path.write_text(yaml.safe_dump(_one("ConfigMap", "mailroom-settings")) + "---\n" + yaml.safe_dump(broken))
    assert validate.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: #2 Deployment/mailroom-responder: spec.replicas: 'two' is not of type 'integer'" in err


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "k8s"
    shutil.copytree(K8S, folder, ignore=shutil.ignore_patterns("schemas"))
    yield folder


def test_the_kustomization_must_name_every_manifest_but_the_example(k8s_copy: Path) -> None:
    kustomization = k8s_copy / "kustomization.yaml"
    assert validate.validate_kustomization(kustomization) == []
    (k8s_copy / "extra.yaml").write_text((k8s_copy / "configmap.yaml").read_text())
    text = kustomization.read_text().replace("  - keda.yaml\n", "  - secrets.example.yaml\n")
    kustomization.write_text(text)
    messages = [p.message for p in validate.validate_kustomization(kustomization)]
    assert messages == [
        "resources does not name extra.yaml",
        "resources does not name keda.yaml",
        "resources names the example secrets.example.yaml: applying it would overwrite the real one",
    ]


def test_a_broken_compose_file_fails(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    compose["services"]["matcher"]["restart"] = 3
    compose["services"]["responder"]["commands"] = ["responder"]
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(compose))
    messages = [p.message for p in validate.validate_compose(path)]
    assert "services.matcher.restart: 3 is not of type 'string'" in messages
    assert any("'commands'" in m and m.startswith("services.responder") for m in messages), messages


# The manifests agree with the code -------------------------------------------------------------------------


def test_the_settings_are_ones_the_workers_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _settings().items():
        assert name.startswith("MAILROOM_"), name
        monkeypatch.setenv(name, value)
    settings = WorkerSettings()
    assert settings.config_source == "topic"
    assert str(settings.data_dir) == "/var/lib/mailroom"
    assert settings.kafka == _kafka()


@pytest.mark.parametrize("worker", sorted(STREAM_WORKERS))
def test_each_stream_worker_scales_on_its_own_group_and_input_topic(worker: str) -> None:
    kafka = _kafka()
    scaled = _one("ScaledObject", f"mailroom-{worker}")
    assert scaled["spec"]["scaleTargetRef"] == {"name": f"mailroom-{worker}"}
    assert _container(_one("Deployment", f"mailroom-{worker}"))["args"] == [worker]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == kafka.group(worker)
    (topic,) = STREAM_WORKERS[worker]
    assert metadata["topic"] == kafka.topic(topic)
    assert metadata["bootstrapServers"] == kafka.bootstrap_servers
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["offsetResetPolicy"] == "earliest"
    # More replicas than partitions would idle: the CRD's CEL rule min <= max is checked here too.
    assert scaled["spec"]["minReplicaCount"] == 1
    assert scaled["spec"]["maxReplicaCount"] == kafka.partitions
    # The ScaledObject owns the replica count; a fixed one in the Deployment would reset it at each apply.
    assert "replicas" not in _one("Deployment", f"mailroom-{worker}")["spec"]


def test_only_the_stream_workers_scale_on_lag() -> None:
    scaled = {d["metadata"]["name"] for d in DOCUMENTS if d["kind"] == "ScaledObject"}
    assert scaled == {f"mailroom-{worker}" for worker in STREAM_WORKERS}
    assert set(STREAM_WORKERS) == set(WORKERS) - {"ingest"}


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_deployment_runs_its_command_probed_where_it_listens(component: str) -> None:
    deployment = _one("Deployment", f"mailroom-{component}")
    pod = deployment["spec"]["template"]
    container = _container(deployment)
    assert container["args"] == [component]
    assert container["image"] == "ghcr.io/mailroom/mailroom:0.1.0"
    assert container["envFrom"] == [{"configMapRef": {"name": "mailroom-settings"}}]
    liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    if component == "admin":
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MAILROOM_ADMIN_HOST"] == "0.0.0.0"
        port = int(env["MAILROOM_ADMIN_PORT"])
        assert (liveness["path"], readiness["path"]) == ("/healthz", "/healthz")
    else:
        port = int(_settings()["MAILROOM_METRICS_PORT"])
        assert (liveness["path"], readiness["path"]) == ("/healthz", "/readyz")
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        assert annotations["prometheus.io/path"] == "/metrics"
    assert _port(container, liveness["port"]) == port
    assert _port(container, readiness["port"]) == port


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_deployment_runs_confined_with_its_resources(component: str) -> None:
    deployment = _one("Deployment", f"mailroom-{component}")
    spec = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == _image_user()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Service links would set MAILROOM_ADMIN_PORT=tcp://... from the Service mailroom-admin.
    assert spec["enableServiceLinks"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    # The root file system is read-only: the data folder every worker creates at start must be a volume.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {_settings()["MAILROOM_DATA_DIR"], "/tmp"} <= mounts
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("worker", ["ingest", "responder"])
def test_the_workers_that_log_in_see_the_mailbox_secrets(worker: str) -> None:
    deployment = _one("Deployment", f"mailroom-{worker}")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in _container(deployment)["volumeMounts"]}
    assert volumes["mailbox-secrets"]["secret"]["secretName"] == "mailroom-mailboxes"
    assert mounts["mailbox-secrets"] == {
        "name": "mailbox-secrets",
        "mountPath": "/run/secrets/mailroom",
        "readOnly": True,
    }
    assert "mailroom-mailboxes" in {d["metadata"]["name"] for d in DOCUMENTS if d["kind"] == "Secret"}


@pytest.mark.parametrize("worker", WORKERS)
def test_each_worker_has_a_disruption_budget_over_its_pods(worker: str) -> None:
    budget = _one("PodDisruptionBudget", f"mailroom-{worker}")
    labels = _one("Deployment", f"mailroom-{worker}")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_admin_service_reaches_the_admin_port() -> None:
    service = _one("Service", "mailroom-admin")
    admin = _one("Deployment", "mailroom-admin")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= admin["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert _port(_container(admin), port["targetPort"]) == 8080
    users = {e["name"]: e["value"] for e in _container(admin)["env"]}["MAILROOM_ADMIN_USERS"]
    (secret_mount,) = [m for m in _container(admin)["volumeMounts"] if m["name"] == "admin-secrets"]
    assert users.startswith(secret_mount["mountPath"] + "/")


def test_the_topics_job_creates_the_topics() -> None:
    job = _one("Job", "mailroom-topics")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["topics"]
    assert container["envFrom"] == [{"configMapRef": {"name": "mailroom-settings"}}]


def test_the_example_secrets_hold_placeholders_only() -> None:
    secrets = [d for d in DOCUMENTS if d["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        assert "data" not in secret
        assert all("REPLACE-ME" in value for value in secret["stringData"].values()), secret["metadata"]


# The image and the compose file ----------------------------------------------------------------------------


def _image_user() -> int:
    (user,) = re.findall(r"^USER (\d+):\d+$", (ROOT / "Dockerfile").read_text(), flags=re.M)
    return int(user)


def test_the_image_runs_mailroom_as_the_user_the_pods_expect() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "\nFROM python:3.11-slim\n" in dockerfile
    assert '\nENTRYPOINT ["mailroom"]\n' in dockerfile
    assert "\nRUN pip install . " in dockerfile
    assert _image_user() != 0


def test_compose_runs_the_same_processes_with_the_same_settings() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    for component in COMPONENTS:
        service = services[component]
        assert service["command"] == [component]
        assert service["image"] == "ghcr.io/mailroom/mailroom:0.1.0"
        assert service["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
        assert set(_settings()) <= set(service["environment"]), component
    assert services["topics"]["command"] == ["topics"]
    assert services["config"]["command"][:2] == ["config", "apply"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["ingest"]["environment"]["MAILROOM_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["admin"]["environment"]["MAILROOM_ADMIN_HOST"] == "0.0.0.0"


# The alerts ------------------------------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _one("PrometheusRule", "mailroom")["spec"]["groups"] for rule in group["rules"]]


def test_every_alert_says_how_bad_and_what_it_means() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_alerts_use_the_metrics_the_workers_serve() -> None:
    used = set()
    for rule in _rules():
        for name in re.findall(r"\bmailroom_[a-z_]+", rule["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert base in METRICS, f"{rule['alert']} uses {name}"
            if base != name:
                assert base in HISTOGRAMS, f"{rule['alert']} uses {name}"
            used.add(base)
    assert used >= METRICS - {"mailroom_decisions_total", "mailroom_records_created_total"}
