"""A moto S3 server on the loopback interface, for tests against a real S3 endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

# Actions moto serves before it checks credentials: the three IAM calls that make the user.
_BOOTSTRAP_ACTIONS = "3"
_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """A moto S3 server on 127.0.0.1 (a subprocess, ``python -m moto.server``) with a bucket.

    With ``auth=True`` (default) the server checks credentials: it serves the first three
    actions unauthenticated (``INITIAL_NO_AUTH_ACTION_COUNT=3``), which create an IAM user with
    S3 rights and its access key (:attr:`key_id`, :attr:`secret`); every later request must be
    signed with that key, so wrong credentials fail as on AWS. With ``auth=False`` any key is
    accepted (for a proxy that rewrites the signed Host header).

    Attributes: ``endpoint`` (``http://127.0.0.1:<port>``), ``port``, ``bucket`` (created at
    start), ``key_id``, ``secret``, ``s3`` (a boto3 S3 client holding the key).

    Raises:
        ImportError: moto or boto3 is not installed (``pip install 'moto[server]' boto3``).
        RuntimeError: the server did not accept connections within 30 s.
    """

    def __init__(self, bucket: str = "lake", *, auth: bool = True) -> None:
        import boto3

        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = _BOOTSTRAP_ACTIONS
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            self._wait_until_up()
            if auth:
                self.key_id, self.secret = self._make_user(boto3)
            else:
                # (not one-letter values: a registered secret is redacted from every later
                # lakevec error message of the process, and "k" would hide the word k in them)
                self.key_id, self.secret = "testing-key", "testing-secret"
            self.s3 = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=_REGION,
                aws_access_key_id=self.key_id,
                aws_secret_access_key=self.secret,
            )
            self.s3.create_bucket(Bucket=bucket)
        except BaseException:
            self.close()
            raise

    def _wait_until_up(self) -> None:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    def _make_user(self, boto3) -> tuple[str, str]:
        """The unauthenticated actions: a user with S3 rights and its access key."""
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=_REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="lakevec")
        iam.put_user_policy(
            UserName="lakevec",
            PolicyName="s3all",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}',
        )
        key = iam.create_access_key(UserName="lakevec")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def options(self, key_id: str | None = None, secret: str | None = None) -> dict[str, str]:
        """Storage options for :meth:`lakevec.Table.open` and friends (object_store key names),
        with this server's key, or ``key_id``/``secret`` instead (to test wrong credentials)."""
        return {
            "aws_access_key_id": key_id or self.key_id,
            "aws_secret_access_key": secret or self.secret,
            "aws_endpoint": self.endpoint,
            "aws_region": _REGION,
            "aws_allow_http": "true",
        }

    def iceberg_properties(self) -> dict[str, str]:
        """The same endpoint and key as pyiceberg catalog properties (``s3.endpoint``, ...)."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.access-key-id": self.key_id,
            "s3.secret-access-key": self.secret,
            "s3.region": _REGION,
        }

    def uri(self, prefix: str = "", *, bucket: str | None = None) -> str:
        """``s3://<bucket>/<prefix>`` (default bucket: :attr:`bucket`)."""
        return f"s3://{bucket or self.bucket}/{prefix.strip('/')}"

    def upload_dir(self, local: str | os.PathLike, prefix: str = "", *, bucket: str | None = None) -> str:
        """Upload every file under the folder ``local`` to ``<bucket>/<prefix>/<relative path>``
        (again after a local change: files are overwritten, none deleted); returns
        :meth:`uri` of ``prefix``.

        Raises:
            FileNotFoundError: ``local`` is not a folder.
        """
        local = Path(local)
        if not local.is_dir():
            raise FileNotFoundError(f"upload_dir: {local} is not a folder")
        bucket = bucket or self.bucket
        for p in sorted(local.rglob("*")):
            if p.is_file():
                rel = p.relative_to(local).as_posix()
                self.s3.upload_file(str(p), bucket, f"{prefix.strip('/')}/{rel}".strip("/"))
        return self.uri(prefix, bucket=bucket)

    def close(self) -> None:
        """Stop the server (waits up to 10 s, then kills it)."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> MotoS3:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MotoS3(endpoint='{self.endpoint}', bucket='{self.bucket}')"
