"""age encryption of the stored stream (worker/crypt.py): the streaming pump, keys, and what a wrong
key, a truncation or a flipped byte look like. No servers: the integration round trips are in
test_encryption.py."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from worker import crypt
from worker.errors import UsageError, WorkerError

HEADER_MAGIC = b"age-encryption.org/v1"
CHUNK = 64 * 1024  # age STREAM plaintext chunk; each ciphertext chunk is CHUNK + 16 (tag)


def _keys(n: int = 1) -> list[tuple[str, str]]:
    return [crypt.generate() for _ in range(n)]


def _chunks(data: bytes, size: int = 100_000):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _encrypt(data: bytes, publics: list[str]) -> bytes:
    recipients = crypt.parse_recipients(",".join(publics), "test")
    return b"".join(crypt.encrypt(_chunks(data), recipients))


def _decrypt(ct: bytes, identity: str) -> bytes:
    return b"".join(crypt.decrypt(_chunks(ct, 70_000), crypt.parse_identities(identity, "test"), "s3://b/k"))


def test_round_trip_streams_and_every_recipient_can_decrypt():
    data = os.urandom(CHUNK * 5 + 123)
    (id1, pub1), (id2, pub2) = _keys(2)
    ct = _encrypt(data, [pub1, pub2])
    assert ct.startswith(HEADER_MAGIC) and data[:64] not in ct
    assert _decrypt(ct, id1) == data
    assert _decrypt(ct, id2) == data


def test_empty_input_round_trips():
    (ident, pub) = _keys()[0]
    assert _decrypt(_encrypt(b"", [pub]), ident) == b""


def test_wrong_identity_is_one_usage_error_naming_the_object():
    (_, pub), (other, _) = _keys(2)
    ct = _encrypt(b"x" * 1000, [pub])
    with pytest.raises(UsageError) as err:
        _decrypt(ct, other)
    assert "s3://b/k is encrypted for other age recipients" in err.value.message
    assert "AGE-SECRET-KEY" not in str(err.value) + (err.value.hint or "")


@pytest.mark.parametrize("cut", ["one byte", "chunk boundary", "inside header"])
def test_truncated_ciphertext_fails(cut):
    ident, pub = _keys()[0]
    data = os.urandom(CHUNK * 3)
    ct = _encrypt(data, [pub])
    header = len(ct) - 3 * (CHUNK + 16)  # three full chunks, the last one marked final
    assert ct[header - 1 : header] != b"" and ct[:header].count(b"\n---") == 1
    end = {"one byte": len(ct) - 1, "chunk boundary": header + 2 * (CHUNK + 16), "inside header": 40}[cut]
    with pytest.raises(WorkerError, match="fails age decryption"):
        _decrypt(ct[:end], ident)


def test_flipped_byte_fails():
    ident, pub = _keys()[0]
    ct = bytearray(_encrypt(os.urandom(CHUNK * 2), [pub]))
    ct[len(ct) // 2] ^= 1
    with pytest.raises(WorkerError, match="fails age decryption"):
        _decrypt(bytes(ct), ident)


def test_an_error_of_the_source_reaches_the_consumer_as_itself():
    _, pub = _keys()[0]

    def failing():
        yield b"a" * 1000
        raise WorkerError("pg_dump of x failed (exit 1)")

    with pytest.raises(WorkerError, match="pg_dump of x failed"):
        b"".join(crypt.encrypt(failing(), crypt.parse_recipients(pub, "t")))


def test_a_consumer_that_stops_early_ends_the_thread_and_closes_the_source():
    _, pub = _keys()[0]
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield b"z" * CHUNK
        finally:
            closed.set()

    out = crypt.encrypt(endless(), crypt.parse_recipients(pub, "t"))
    next(out)
    out.close()
    assert closed.wait(10), "the source generator was not closed"
    assert not [t for t in threading.enumerate() if t.name == "age-encrypt"]


def test_memory_stays_bounded_for_a_large_stream():
    """The pump holds at most OUT_QUEUE pieces: 64 MiB through it never buffers it all."""
    _, pub = _keys()[0]
    sha, total = hashlib.sha256(), 0
    for piece in crypt.encrypt((b"q" * (1 << 20) for _ in range(64)), crypt.parse_recipients(pub, "t")):
        sha.update(piece)
        total += len(piece)
        assert len(piece) <= crypt.PIECE + CHUNK + 16
    assert total > 64 << 20


def test_bad_keys_are_one_line_and_never_echo_the_identity():
    with pytest.raises(UsageError, match="is not an age recipient"):
        crypt.parse_recipients("age1notakey", "encryption.recipients")
    secret = "AGE-SECRET-KEY-1" + "Q" * 58
    with pytest.raises(UsageError) as err:
        crypt.parse_identities(secret, "the age identity")
    assert secret not in err.value.message and "Q" * 20 not in err.value.message
    with pytest.raises(UsageError, match="holds no age identity"):
        crypt.parse_identities("# only a comment\n", "the age identity")


def test_identity_file_comments_are_skipped(tmp_path):
    ident, pub = _keys()[0]
    f = tmp_path / "key.txt"
    f.write_text(f"# created: 2026-12-02\n# public key: {pub}\n{ident}\n")
    [parsed] = crypt.identities_from(None, str(f))
    assert str(parsed.to_public()) == pub
    with pytest.raises(UsageError, match="cannot read the age identity file"):
        crypt.identities_from(None, str(tmp_path / "missing"))
    assert crypt.identities_from(None, None) == []


def test_ahead_keeps_order_errors_and_closes_its_source():
    closed = threading.Event()

    def numbered():
        try:
            for i in range(100):
                yield bytes([i])
            raise WorkerError("boom")
        finally:
            closed.set()

    got = []
    with pytest.raises(WorkerError, match="boom"):
        for piece in crypt.ahead(numbered(), 4, "t"):
            got.append(piece[0])
    assert got == list(range(100)) and closed.wait(5)
    early = crypt.ahead(numbered(), 4, "t2")
    next(early)
    early.close()
    assert not [t for t in threading.enumerate() if t.name == "t2"]
