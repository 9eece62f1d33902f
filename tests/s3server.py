"""A real S3 API for the tests: moto's standalone server on 127.0.0.1 and a free port, with IAM
authentication on, so a wrong key pair is refused as AWS or MinIO would refuse it.

One server per test process (started on first use, stopped at exit); each test gets its own
bucket. Import the fixtures into a test module by name (`s3_server = s3server.s3_server`).
"""

import atexit
import functools
import json
import logging
import secrets
from dataclasses import dataclass

import boto3
import pytest
import urllib3

REGION = "eu-west-1"
READ_WRITE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION

    def client(self, *, access_key_id: str = "", secret_access_key: str = ""):
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
        )

    def new_bucket(self) -> str:
        name = f"studio-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        return name


@functools.cache
def _start() -> S3Server:
    from moto.server import ThreadedMotoServer  # deferred: moto loads every AWS service's models

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # While authentication is still off: a user with a key pair that may do anything in S3.
    iam = boto3.session.Session().client(
        "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
    )
    iam.create_user(UserName="studio")
    iam.put_user_policy(UserName="studio", PolicyName="s3", PolicyDocument=json.dumps(READ_WRITE_POLICY))
    key = iam.create_access_key(UserName="studio")["AccessKey"]
    # From now on every request must be signed with a known key pair that its policy allows.
    response = urllib3.request("POST", f"{endpoint}/moto-api/reset-auth", body=b"0")
    assert response.status == 200, response.data
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    return _start()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new, empty bucket on the test S3 server."""
    return s3_server.new_bucket()
