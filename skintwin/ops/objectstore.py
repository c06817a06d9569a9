"""An S3 API on loopback for the tests and `skintwin up --profile team`, and the settings
that point MLflow, DVC and boto3 at any S3 endpoint.

The server is moto's (`moto_server`, what DVC's own tests use): a real HTTP S3 API whose
objects live in its memory, so it is a rehearsal stage, not a place for data to stay. A
team points the same settings at its own object store: SKINTWIN_S3_ENDPOINT (empty for
AWS itself) and the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.ops.processes import bin_path, free_port, stop_group, wait_http

# moto accepts any key pair; these name themselves so nobody mistakes them for real ones
LOCAL_KEYS = {"AWS_ACCESS_KEY_ID": "skintwin-local", "AWS_SECRET_ACCESS_KEY": "skintwin-local"}


def s3_env(endpoint: str, keys: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for boto3, MLflow's S3 artifact store and DVC's S3 remote."""
    return {
        **(keys or {}),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,  # boto3 ≥ 1.28, and aiobotocore under DVC
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


class S3Server:
    """moto's S3 server on 127.0.0.1; `stop()` frees its port (and forgets its objects)."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        executable = Path(bin_path("moto_server"))
        if not executable.is_file():
            raise SkinTwinError("no S3 server: pip install 'moto[s3,server]'")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_http(f"{self.endpoint}/moto-api/", timeout=60)
        except SkinTwinError:
            self.stop()
            raise

    def env(self) -> dict[str, str]:
        return s3_env(self.endpoint, LOCAL_KEYS)

    def create_bucket(self, name: str) -> str:
        """Create bucket `name`; returns `s3://name`."""
        import boto3

        keys = {k.lower(): v for k, v in LOCAL_KEYS.items()}
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **keys)
        client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_group(self.proc.pid, grace_s=10.0)
            self.proc.wait()
