"""How MultipartUpload cuts the stream into parts (a fake client: what reaches S3 is tested on MinIO)."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from worker.s3 import MIN_PART, MultipartUpload
from worker.s3_client import S3Location

MiB = 1 << 20


class _Parts:
    """A fake S3 client that keeps each uploaded part's bytes as the upload thread received them."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.completed: list[int] | None = None
        self._lock = threading.Lock()

    def create_multipart_upload(self, **kw: Any) -> dict[str, str]:
        return {"UploadId": "u1"}

    def upload_part(self, *, PartNumber: int, Body: bytes, **kw: Any) -> dict[str, str]:  # noqa: N803 - boto's names
        with self._lock:
            self.parts[PartNumber] = bytes(Body)
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, *, MultipartUpload: dict[str, Any], **kw: Any) -> None:  # noqa: N803
        self.completed = [p["PartNumber"] for p in MultipartUpload["Parts"]]


def _upload(chunks: list[bytes]) -> _Parts:
    fake = _Parts()
    up = MultipartUpload(fake, S3Location("b"), "k", part_size=MIN_PART).start()
    for chunk in chunks:
        up.write(chunk)
    up.complete()
    return fake


def test_parts_hold_the_stream_in_order_each_at_least_part_size_but_the_last() -> None:
    rng = random.Random(7)
    sizes = [0, 1, 3 * MiB, 17] + [rng.choice([0, 1, 4096, 65536, MiB, MiB + 1, 2 * MiB + 3]) for _ in range(60)]
    chunks = [rng.randbytes(n) for n in sizes]
    fake = _upload(chunks)
    assert fake.completed == sorted(fake.parts) == list(range(1, len(fake.parts) + 1))
    stored = [fake.parts[n] for n in fake.completed]
    assert b"".join(stored) == b"".join(chunks)
    assert len(stored) > 3
    for part in stored[:-1]:
        # cut at the first chunk boundary past part_size: never smaller, and never a chunk more
        assert MIN_PART <= len(part) < MIN_PART + max(sizes)
    assert 0 < len(stored[-1])


@pytest.mark.parametrize("chunks", [[], [b""], [b"x" * 100]], ids=["nothing", "empty-chunk", "small"])
def test_a_short_stream_is_one_part(chunks: list[bytes]) -> None:
    # CompleteMultipartUpload needs at least one part, even for an empty object.
    fake = _upload(chunks)
    assert fake.completed == [1]
    assert fake.parts[1] == b"".join(chunks)


def test_a_chunk_written_as_a_bytearray_is_stored_as_it_was_written() -> None:
    # crypt hands over its own buffers (bytearray) without a copy; the part must hold their bytes.
    data = bytearray(b"a" * MIN_PART)
    fake = _upload([data, b"tail"])
    assert fake.parts[1] == b"a" * MIN_PART and fake.parts[2] == b"tail"
