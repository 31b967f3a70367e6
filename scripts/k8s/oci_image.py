"""Assemble OCI images from folders, with no container engine and no registry.

The local cluster (`make k8s-up`) runs images this machine builds itself: no Docker engine runs
here and no registry is reachable. An OCI image is only tar files and JSON, so this writes them
directly: `layer` turns a folder into a layer tar, `image` puts layers and a config into an OCI
archive that `ctr -n k8s.io images import` loads into containerd.

Invariant: a layer is a pure function of its folder's content (sorted entries, fixed mtime,
numeric owners only), so rebuilding an unchanged folder gives the same digest and containerd
stores a layer that several images share (the Debian base) once.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Anything written into a layer gets this mtime: the epoch of reproducible builds, so that the
# same content always hashes the same.
FIXED_MTIME = 0
# Mount points the runtime fills at start; their contents in a build root (debootstrap leaves
# device nodes in /dev) would only shadow what runc mounts.
RUNTIME_MOUNTS = ("dev", "proc", "sys", "run")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """A layer tar on disk: its digest is also its diff id, since layers stay uncompressed."""

    path: Path
    digest: str
    size: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _tar_info(root: Path, path: Path, hardlinks: dict[tuple[int, int], str]) -> tarfile.TarInfo:
    """One entry, stripped of whatever would make two builds of the same folder differ."""
    name = path.relative_to(root).as_posix()
    st = path.lstat()
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = FIXED_MTIME
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in hardlinks:
            info.type, info.linkname = tarfile.LNKTYPE, hardlinks[key]
        else:
            hardlinks[key] = name
            info.size = st.st_size
    else:
        raise ValueError(f"unsupported file type: {path}")
    return info


def _entries(root: Path) -> list[Path]:
    """Every path under root, parents before children, in a stable order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            # Keep the mount points themselves (empty), drop what a build left in them.
            dirnames[:] = [d for d in dirnames if d not in RUNTIME_MOUNTS]
            found.extend(root / d for d in RUNTIME_MOUNTS if (root / d).is_dir())
        dirnames.sort()
        found.extend(here / d for d in dirnames)
        found.extend(here / f for f in sorted(filenames))
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _marker(root: Path, folder: Path, name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo((folder / name).relative_to(root).as_posix())
    info.mtime, info.mode = FIXED_MTIME, 0o644
    return info


def write_layer(root: Path, out: Path) -> Layer:
    """Writes root's content as an uncompressed layer tar at out."""
    hardlinks: dict[tuple[int, int], str] = {}
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(root):
            if _is_whiteout(path):
                # An overlay upper folder marks a deleted file with a 0/0 character device; an
                # OCI layer marks it with an empty `.wh.<name>` file.
                tar.addfile(_marker(root, path.parent, ".wh." + path.name))
                continue
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                # Sockets, fifos and device nodes have no place in an image.
                continue
            info = _tar_info(root, path, hardlinks)
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
            if info.isdir() and _is_opaque(path):
                # A folder that replaces the lower one instead of merging with it.
                tar.addfile(_marker(root, path, ".wh..wh..opq"))
    tmp.replace(out)
    return Layer(out, sha256_file(out), out.stat().st_size)


def _blob(tar: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest.removeprefix("sha256:"))
    info.size, info.mtime = len(data), FIXED_MTIME
    tar.addfile(info, io.BytesIO(data))
    return digest, len(data)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def image_config(layers: list[Layer], config: dict[str, Any]) -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }


def write_archive(name: str, layers: list[Layer], config: dict[str, Any], out: Path) -> None:
    """An OCI archive of one image, named for containerd by the io.containerd.image.name
    annotation (ctr import reads it), so no registry naming is needed."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for layer in layers:
            info = tar.gettarinfo(str(layer.path), "blobs/sha256/" + layer.digest[7:])
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
            with layer.path.open("rb") as handle:
                tar.addfile(info, handle)
        cfg_digest, cfg_size = _blob(tar, _json(image_config(layers, config)))
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cfg_digest,
                "size": cfg_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer.digest,
                    "size": layer.size,
                }
                for layer in layers
            ],
        }
        man_digest, man_size = _blob(tar, _json(manifest))
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": man_digest,
                    "size": man_size,
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
        for member, data in (
            ("oci-layout", _json({"imageLayoutVersion": "1.0.0"})),
            ("index.json", _json(index)),
        ):
            info = tarfile.TarInfo(member)
            info.size, info.mtime = len(data), FIXED_MTIME
            tar.addfile(info, io.BytesIO(data))


def _layer_from_file(path: Path) -> Layer:
    return Layer(path, sha256_file(path), path.stat().st_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    layer = sub.add_parser("layer", help="a folder -> an uncompressed layer tar")
    layer.add_argument("root", type=Path)
    layer.add_argument("out", type=Path)
    image = sub.add_parser("image", help="layer tars + config -> an OCI archive for ctr import")
    image.add_argument("--name", required=True, help="e.g. docker.io/jobrelay/intake:0.1.0")
    image.add_argument("--config", required=True, help="the image config's `config` as JSON")
    image.add_argument("--out", required=True, type=Path)
    image.add_argument("layers", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "layer":
        made = write_layer(args.root, args.out)
        sys.stdout.write(f"{made.digest} {made.size}\n")
        return 0
    write_archive(
        args.name, [_layer_from_file(p) for p in args.layers], json.loads(args.config), args.out
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
