"""Third-party pictures and footage, fetched at run time from the Debian archive into a cache folder.

``python -m posmlp_video assets fetch`` downloads the pinned packages below with ``apt-get download``, checks
each file's size and SHA-256, extracts only the files that are used (``dpkg-deb -x``) and writes
``manifest.json`` (package, version, file, licence) next to them. Nothing here is committed to the repository
and nothing is fetched at import time. The cache folder is ``$POSMLP_VIDEO_CACHE`` or
``<user cache dir>/posmlp_video/assets`` (``--cache`` overrides both).

What each package gives:

- ``tuxpaint-stamps-default`` (GPL-2): photographic and drawn cut-outs with alpha (animals, food, houses,
  plants, vehicles, ...): the moving objects of real-pixel SynthMotion (training).
- ``opencv-doc`` (Apache-2.0 AND BSD-3-Clause) and ``python3-skimage`` (BSD-3-Clause; the sample photos
  used are CC0 or public domain, see ``skimage/data/_fetchers.py``): still photos, the backgrounds of
  real-pixel SynthMotion (training); ``opencv-doc``'s ``vtest.avi`` (people walking, static camera) is the
  real footage of the evaluation sets and is never trained on.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posmlp_video.errors import PosMLPError

MANIFEST = "manifest.json"


class AssetError(PosMLPError):
    """An asset cannot be downloaded, fails its checksum, or has not been fetched yet."""


@dataclass(frozen=True)
class Package:
    """One pinned Debian package: where it comes from, how to check it, what of it is used and its licence."""

    name: str
    version: str
    size: int
    sha256: str
    licence: str
    use: str
    files: tuple[str, ...]  # fnmatch patterns of the used paths inside the package

    @property
    def deb(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_all.deb"


_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data/"
_SKIMAGE_DATA = "usr/lib/python3/dist-packages/skimage/data/"
# Photos only: the drawings, charts, text and calibration patterns of the same folders are left out.
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "apple.jpg", "baboon.jpg", "building.jpg", "butterfly.jpg",
                 "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg", "orange.jpg",
                 "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg", "box_in_scene.png",
                 "basketball1.png", "HappyFish.jpg", "aloeL.jpg", "blox.jpg", "board.jpg", "pic3.png")
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                  "gravel.png", "rocket.jpg")
# Stamp folders of symbols (letters, money, maths, flags...) are not objects: left out.
_STAMP_EXCLUDE = ("symbols/", "town/flags/", "town/roadsigns/")

PACKAGES: tuple[Package, ...] = (
    Package("tuxpaint-stamps-default", "2022.06.04-1", 160880444,
            "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34", "GPL-2",
            "moving objects of real-pixel SynthMotion (training)", ("usr/share/tuxpaint/stamps/*.png",)),
    Package("opencv-doc", "4.6.0+dfsg-12", 95715012,
            "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a", "Apache-2.0 AND BSD-3-Clause",
            "backgrounds of real-pixel SynthMotion (training: photos); vtest.avi: real evaluation footage only",
            tuple(_OPENCV_DATA + name for name in (*OPENCV_PHOTOS, "vtest.avi"))),
    Package("python3-skimage", "0.19.3-8", 20713608,
            "728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9",
            "BSD-3-Clause (package); the photos used are CC0 or public domain (skimage/data/_fetchers.py)",
            "backgrounds of real-pixel SynthMotion (training)", tuple(_SKIMAGE_DATA + n for n in SKIMAGE_PHOTOS)),
)


def cache_dir(override: str | Path | None = None) -> Path:
    """Where assets live: `override`, else ``$POSMLP_VIDEO_CACHE``, else the user cache dir's ``posmlp_video/assets``."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("POSMLP_VIDEO_CACHE"):
        return Path(os.environ["POSMLP_VIDEO_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "posmlp_video" / "assets"


def sha256_file(path: Path) -> str:
    """A file's SHA-256 in hex, read in 1 MiB blocks (asset checks; the app names uploads by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(package: Package, folder: Path) -> Path:
    """The package's .deb in `folder` (kept from an earlier run or put there by hand), checked."""
    path = folder / package.deb
    if not path.is_file():
        if shutil.which("apt-get") is None:
            raise AssetError(f"cannot download {package.name} {package.version}: apt-get not found (put "
                             f"{package.deb} into {folder} by hand)")
        try:
            proc = subprocess.run(["apt-get", "download", f"{package.name}={package.version}"], cwd=folder,
                                  capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            raise AssetError(f"downloading {package.name} {package.version} timed out") from None
        if proc.returncode != 0 or not path.is_file():
            reason = (proc.stderr.strip().splitlines() or ["no file written"])[-1]
            raise AssetError(f"apt-get could not download {package.name}={package.version} (offline, or no "
                             f"Debian bookworm source?): {reason}")
    size = path.stat().st_size
    if size != package.size or sha256_file(path) != package.sha256:
        path.unlink()
        raise AssetError(f"{package.deb} does not match its pinned size/SHA-256 ({size} bytes): deleted, "
                         "fetch again")
    return path


def _used(package: Package, relative: str) -> bool:
    if not any(fnmatch.fnmatch(relative, pattern) for pattern in package.files):
        return False
    return not (package.name.startswith("tuxpaint") and any(part in relative for part in _STAMP_EXCLUDE))


def fetch(cache: str | Path | None = None, keep_downloads: bool = False) -> Path:
    """Download, check and extract every package into the cache; returns the manifest's path.

    Idempotent: packages whose files are already listed in the manifest are skipped.
    """
    root = cache_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root, required=False)
    done = {(e["package"], e["version"]) for e in manifest}
    downloads = root / "downloads"
    downloads.mkdir(exist_ok=True)
    for package in PACKAGES:
        if (package.name, package.version) in done:
            continue
        deb = _download(package, downloads)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), tmp], capture_output=True, text=True)
            if proc.returncode != 0:
                raise AssetError(f"dpkg-deb could not extract {deb.name}: {proc.stderr.strip()}")
            for source in sorted(Path(tmp).rglob("*")):
                relative = source.relative_to(tmp).as_posix()
                if not source.is_file() or not _used(package, relative):
                    continue
                target = root / package.name / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                manifest.append(dict(package=package.name, version=package.version, deb_sha256=package.sha256,
                                     file=f"{package.name}/{relative}", sha256=sha256_file(target),
                                     licence=package.licence, use=package.use))
        if not keep_downloads:
            deb.unlink()
        _write_manifest(root, manifest)
    return root / MANIFEST


def _write_manifest(root: Path, entries: list[dict[str, Any]]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    tmp.replace(root / MANIFEST)


def read_manifest(cache: str | Path | None = None, required: bool = True) -> list[dict[str, Any]]:
    """The manifest's entries (one per extracted file); an AssetError naming the fix when not fetched."""
    path = cache_dir(cache) / MANIFEST
    if not path.is_file():
        if required:
            raise AssetError(f"no assets in {path.parent}: run 'python -m posmlp_video assets fetch' first")
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def asset_files(kind: str, cache: str | Path | None = None) -> list[Path]:
    """Sorted paths of one kind of asset: "objects" (cut-outs), "backgrounds" (photos) or "footage" (vtest.avi).

    The order is fixed by the pinned packages, so ``(seed, index)`` picks the same picture on every machine.
    """
    root = cache_dir(cache)
    entries = read_manifest(root)
    if kind == "objects":
        keep = [e for e in entries if e["package"].startswith("tuxpaint")]
    elif kind == "backgrounds":
        keep = [e for e in entries if e["package"] != "tuxpaint-stamps-default" and not e["file"].endswith(".avi")]
    elif kind == "footage":
        keep = [e for e in entries if e["file"].endswith("vtest.avi")]
    else:
        raise ValueError(f"unknown asset kind {kind!r}")
    if not keep:
        raise AssetError(f"the manifest in {root} lists no {kind}: run 'python -m posmlp_video assets fetch'")
    paths = sorted(root / e["file"] for e in keep)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise AssetError(f"{missing[0]} is listed in the manifest but missing: run 'python -m posmlp_video "
                         "assets fetch' again")
    return paths


def sources() -> list[dict[str, str]]:
    """Every package behind the data, with its licence and use (the ``data_sources`` of a checkpoint card)."""
    return [dict(name=p.name, version=p.version, licence=p.licence, use=p.use) for p in PACKAGES]


# --- command line ---------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("fetch", "list"), help="fetch: download and extract; list: show the manifest")
    parser.add_argument("--cache", default=None, help="asset folder (default: $POSMLP_VIDEO_CACHE or the user cache dir)")
    parser.add_argument("--keep-downloads", action="store_true", help="keep the .deb files after extracting")


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        path = fetch(args.cache, args.keep_downloads)
        entries = read_manifest(path.parent)
        print(f"{len(entries)} files from {len(PACKAGES)} packages in {path.parent} (manifest: {path})")
        return 0
    for package in PACKAGES:
        n = sum(e["package"] == package.name for e in read_manifest(args.cache))
        print(f"{package.name} {package.version}  {n} files  licence: {package.licence}  use: {package.use}")
    return 0
