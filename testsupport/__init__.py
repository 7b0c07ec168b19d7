"""What the tests and the benchmark share: real servers (PostgreSQL, MinIO, kube-apiserver, podman
pods), datasets and their fingerprints, process samplers and waiting helpers.

Imported as `testsupport.<module>` from tests/ and bench/ alike (pytest puts the repository root on
`sys.path`, see pyproject.toml; `python -m bench` runs from it)."""
