"""docker-compose.yml checked statically (there is no Docker engine on the build machine).

What `docker compose up` would trip over first: YAML that does not parse, a `${VAR}` missing from
.env, a mounted or built file that does not exist, two services on one host port, an unpinned
image, a long-running service without a health check, an init script out of step with the SQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from iot_cli.localstack.postgres import INIT_SQL_DIR, init_sql_variables
from iot_core.settings import PROJECT_ROOT, Settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ENV_FILE = PROJECT_ROOT / ".env"
CORE_SERVICES = {"mongo", "timescaledb", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "mlflow", "generator", "api"}
ONE_SHOT_SERVICES = {"airflow-init"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}; "$$" is a literal dollar for the container
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|:?\?[^}]*)?\}")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(ENV_FILE).items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def interpolate(text: str, env: dict[str, str]) -> str:
    def value(m: re.Match) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3)
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env[name]

    return INTERPOLATION.sub(value, text).replace("$$", "$")


def test_compose_file_parses_with_the_platform_services(services):
    assert set(services) >= CORE_SERVICES, f"missing: {CORE_SERVICES - set(services)}"


def test_every_variable_is_defined_in_env_or_has_a_default(env):
    missing = sorted({m.group(1) for m in INTERPOLATION.finditer(COMPOSE_FILE.read_text())
                      if m.group(2) is None and m.group(1) not in env})
    assert not missing, f"${{VAR}} used in docker-compose.yml but not set in .env: {missing}"


def test_every_long_running_service_has_a_healthcheck(services):
    problems = []
    for name, svc in services.items():
        if name in ONE_SHOT_SERVICES:
            assert svc.get("restart") == "no", f"{name} runs once and must not restart"
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        if not test or svc["healthcheck"].get("disable"):
            problems.append(name)
    assert not problems, f"services without a healthcheck: {problems}"


def test_every_image_is_pinned(services):
    problems = []
    for name, svc in services.items():
        images = [svc["image"]] if "image" in svc else []
        if "build" in svc:
            images += [v for k, v in (svc["build"].get("args") or {}).items() if k.endswith("IMAGE")]
        assert images, f"{name}: neither an image nor a build"
        for image in images:
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest" or "${" in image:
                problems.append(f"{name}: {image}")
    assert not problems, f"images without a fixed tag: {problems}"


def test_dockerfile_base_image_is_pinned_and_does_not_reinstall_airflow(services):
    dockerfiles = {PROJECT_ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
                   for svc in services.values() if "build" in svc}
    assert dockerfiles
    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        base = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)", text, re.M).group(1)
        assert re.fullmatch(r"apache/airflow:3\.3\.\d+-python3\.11", base), base
        # Airflow stays the image's own: the locked set is filtered and pinned to the image's version
        assert "grep -vE '^apache-airflow" in text and '"apache-airflow==${AIRFLOW_VERSION}"' in text


def _referenced_paths(services, env) -> list[tuple[str, Path]]:
    refs = []
    for name, svc in services.items():
        if "build" in svc:
            context = PROJECT_ROOT / svc["build"]["context"]
            refs += [(name, context), (name, context / svc["build"]["dockerfile"])]
        env_files = svc.get("env_file") or []
        for f in [env_files] if isinstance(env_files, str) else env_files:
            refs.append((name, PROJECT_ROOT / (f if isinstance(f, str) else f["path"])))
        for volume in svc.get("volumes") or []:
            source = (volume if isinstance(volume, str) else volume.get("source", "")).split(":")[0]
            if source.startswith((".", "/")):
                refs.append((name, (PROJECT_ROOT / interpolate(source, env)).resolve()))
        # files of the project used inside the image (it holds the repository at /opt/iot)
        for text in (str(svc.get("command", "")), str(svc.get("healthcheck", ""))):
            refs += [(name, PROJECT_ROOT / rel) for rel in re.findall(r"/opt/iot/([\w./-]+\.\w+)", text)]
    return refs


def test_every_referenced_file_exists(services, env):
    refs = _referenced_paths(services, env)
    assert any(p.name == "initdb.sh" for _, p in refs)  # the parser really follows the volumes
    missing = [f"{name}: {path}" for name, path in refs if not path.exists()]
    assert not missing, "\n".join(missing)


def test_no_two_services_publish_the_same_host_port(services, env):
    seen: dict[int, str] = {}
    clashes = []
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            spec = interpolate(str(port), env).split("/")[0]
            host_port = int(spec.split(":")[-2]) if spec.count(":") >= 1 else int(spec)
            if host_port in seen:
                clashes.append(f"{host_port}: {seen[host_port]} and {name}")
            seen[host_port] = name
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"
    assert not clashes, clashes
    assert len(seen) >= 5  # mongo, timescaledb, airflow, mlflow, api at least


def test_dependencies_exist_and_airflow_waits_for_its_migration(services):
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker"):
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["timescaledb"]["condition"] == "service_healthy", name


def test_celery_profile_adds_redis_and_scalable_workers(services):
    assert services["redis"]["profiles"] == ["celery"]
    worker = services["airflow-worker"]
    assert worker["profiles"] == ["celery"]
    assert "celery worker" in worker["command"]
    # --scale airflow-worker=N needs containers without fixed names or host ports
    assert "container_name" not in worker and not worker.get("ports")
    executor = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    assert executor == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert services["grafana"]["profiles"] == ["grafana"]


def test_service_settings_overrides_are_real_settings(services):
    """MONGO_HOST, PG_HOST, ... in `environment` must name fields that iot_core.settings reads."""
    fields = {f.upper() for f in Settings.model_fields}
    for name in ("generator", "api", "mlflow", "airflow-scheduler"):
        overrides = {k for k in services[name]["environment"] if not k.startswith(("AIRFLOW__", "MLFLOW_SERVER"))}
        assert {"MONGO_HOST", "PG_HOST", "PG_PORT"} <= overrides, name
        assert overrides <= fields, f"{name}: {overrides - fields} are not settings"


def test_timescaledb_init_script_passes_every_variable_the_sql_uses(services, env):
    script = (PROJECT_ROOT / "docker" / "timescaledb" / "initdb.sh").read_text()
    passed = set(re.findall(r'-v "(\w+)=\$\{', script))
    used = set()
    for sql in sorted(INIT_SQL_DIR.glob("*.sql")):
        used |= set(re.findall(r":'(\w+)'", sql.read_text()))
    assert used <= passed, f"variables the SQL needs but initdb.sh does not pass: {used - passed}"
    assert used <= set(init_sql_variables(Settings())), "local mode passes them too"
    # every value comes from .env (or what compose sets for the container)
    container_env = set(env) | set(services["timescaledb"]["environment"])
    from_env = set(re.findall(r"\$\{([A-Z_]+)\}", script))  # lower case: the script's own variables
    assert from_env <= container_env, f"initdb.sh reads unset variables: {from_env - container_env}"


def test_grafana_datasource_uses_the_read_only_analyst_role(env):
    ds = yaml.safe_load((PROJECT_ROOT / "docker/grafana/provisioning/datasources/warehouse.yml").read_text())
    source = ds["datasources"][0]
    assert source["user"] == "${ANALYST_USER}"
    used = set(re.findall(r"\$\{(\w+)\}", (PROJECT_ROOT / "docker/grafana/provisioning/datasources/warehouse.yml")
                          .read_text()))
    assert used <= set(env)


def test_timescaledb_init_script_runs_against_a_real_server(services, pg_cluster, settings_env):
    """The container's init script, run with psql against the test cluster (its SQL is idempotent)."""
    import os
    import subprocess

    s = settings_env
    script_env = {name.upper(): getattr(s, name) for name in Settings.model_fields}
    script_env = {k: v.get_secret_value() if hasattr(v, "get_secret_value") else str(v) for k, v in script_env.items()}
    script_env.update({
        "PATH": f"{pg_cluster.bin_dir}{os.pathsep}{os.environ['PATH']}",
        "POSTGRES_USER": s.pg_superuser, "PGPASSWORD": s.pg_superuser_password.get_secret_value(),
        "PGHOST": "127.0.0.1", "PGPORT": str(s.pg_port), "IOT_INIT_SQL_DIR": str(INIT_SQL_DIR),
    })
    r = subprocess.run(["bash", str(PROJECT_ROOT / "docker" / "timescaledb" / "initdb.sh")], env=script_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warehouse schemas and grants" in r.stdout


def test_scheduler_runs_the_preloading_launcher_of_the_local_stack(services):
    import importlib.util

    command = services["airflow-scheduler"]["command"]
    assert command[:2] == ["python", "-m"], "the image's entrypoint runs `python ...` as given"
    assert importlib.util.find_spec(command[2]) is not None, f"{command[2]} is not importable"
    assert command[2] == "iot_cli.localstack.scheduler"
