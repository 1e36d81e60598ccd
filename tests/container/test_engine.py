"""container/engine.py: which engine, with which flags, and one line where there is none."""

from __future__ import annotations

import resource

from container import engine as engines


def test_no_engine_is_one_line_saying_how_to_get_one(monkeypatch) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    found, why = engines.find()
    assert found is None and "\n" not in why and "apt-get install podman" in why


def test_podmans_ulimits_stay_within_this_processs_hard_limits() -> None:
    flags = dict(f.split("=") for f in engines.podman_run_flags() if "=" in f)
    soft, hard = (int(x) for x in flags["nofile"].split(":"))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert soft == 1024 and (nofile == resource.RLIM_INFINITY or hard <= nofile)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    assert nproc == resource.RLIM_INFINITY or int(flags["nproc"].split(":")[1]) <= nproc


def test_memory_as_either_engine_shows_it() -> None:
    assert engines.parse_bytes("1.455GB ") == 1_455_000_000  # podman
    assert engines.parse_bytes("1.5GiB") == 1_610_612_736    # docker
    assert engines.parse_bytes("0B") == 0


def test_pip_settings_are_secrets_from_files_never_values(monkeypatch, tmp_path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("x")
    monkeypatch.setenv("PIP_CERT", str(cert))
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:pw@index.example/simple")
    with engines.pip_secrets() as flags:
        assert flags[:2] == ["--secret", f"id=pip_cert,src={cert}"]
        index = flags[3].split("src=")[1]
        assert "pw@" not in " ".join(flags)  # the URL is in a file, not on a command line
        with open(index) as f:
            assert f.read() == "https://user:pw@index.example/simple"
