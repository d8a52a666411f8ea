"""``assets fetch``: pinned packages checked by size and SHA-256, a manifest with licences, one-line failures."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from posmlp_video import assets as assets_module
from posmlp_video.assets import PACKAGES, AssetError, asset_files, cache_dir, fetch, read_manifest
from posmlp_video.cli import main


def test_manifest_lists_every_file_with_its_package_and_licence(assets):
    entries = read_manifest(assets)
    by_package = {p.name: p for p in PACKAGES}
    assert {e["package"] for e in entries} == set(by_package)
    for entry in entries[:: max(1, len(entries) // 40)]:  # a spread of files, re-hashed independently
        package = by_package[entry["package"]]
        assert entry["version"] == package.version and entry["licence"] == package.licence
        data = (assets / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    footage = asset_files("footage", assets)
    assert [p.name for p in footage] == ["vtest.avi"]
    assert len(asset_files("objects", assets)) > 300 and len(asset_files("backgrounds", assets)) >= 20
    assert not any("symbols/" in str(p) for p in asset_files("objects", assets))


def test_cache_dir_is_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv("POSMLP_VIDEO_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("POSMLP_VIDEO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "posmlp_video" / "assets"


def _fake_apt(folder: Path, script: str) -> None:
    apt = folder / "apt-get"
    apt.write_text("#!/bin/sh\n" + script)
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)


def test_offline_is_one_clear_line(monkeypatch, tmp_path, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_apt(bin_dir, "echo 'E: Failed to fetch http://deb.debian.org/... Temporary failure resolving' >&2\nexit 100\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["assets", "fetch", "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not download" in err and "Temporary failure resolving" in err


def test_a_corrupt_download_is_refused_and_deleted(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # apt-get "downloads" a file of the right name but wrong content
    _fake_apt(bin_dir, 'for a in "$@"; do n=${a%%=*}; v=${a#*=}; done\necho junk > "${n}_${v}_all.deb"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(AssetError, match="does not match its pinned size/SHA-256"):
        fetch(tmp_path / "cache")
    assert not list((tmp_path / "cache" / "downloads").glob("*.deb"))


def test_missing_assets_name_the_fetch_command(tmp_path, capsys):
    with pytest.raises(AssetError, match="assets fetch"):
        asset_files("objects", tmp_path)
    assert main(["assets", "list", "--cache", str(tmp_path)]) == 1
    assert "assets fetch" in capsys.readouterr().err


def test_sources_match_the_pinned_packages():
    sources = assets_module.sources()
    assert [s["name"] for s in sources] == [p.name for p in PACKAGES]
    assert all(s["licence"] and s["version"] for s in sources)
    json.dumps(sources)  # goes into checkpoint metadata
