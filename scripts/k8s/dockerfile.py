"""Build an app's image from its own apps/<app>/Dockerfile, with no container engine.

No Docker engine runs on this machine and no registry is reachable, yet the local cluster should
run the images the Dockerfiles describe, not a second recipe that could drift from them. So this
runs the Dockerfile itself: each stage is an overlay mount on a Debian root filesystem (from
debootstrap, standing in for every `FROM`), `RUN` runs in a chroot of it with the network of the
host (pip reaches PyPI), and the final stage's upper folder becomes the image's own layer.

Only what the project's Dockerfiles use is understood: ARG, FROM ... AS, ENV, WORKDIR, COPY
(also --from=stage), RUN, USER, EXPOSE, CMD. Anything else stops the build rather than being
skipped, so an image never silently differs from its Dockerfile.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Where the host keeps the CA bundle pip trusts: RUN steps reach PyPI through the same network
# as the host, so they need the same bundle; it is put in /tmp of the stage and removed after.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Docker's own default for a container's PATH, which the Dockerfiles' ENV PATH=... extends.
# By its full path: the RUN environment's PATH is the image's, not the host's.
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STAGE_CA_BUNDLE = "/tmp/.host-ca.crt"  # noqa: S108 - a path inside the build root, not the host


@dataclass
class Stage:
    """One FROM ... AS stage: an overlay of upper on the base root, mounted at merged."""

    name: str
    upper: Path
    merged: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    config: dict[str, Any] = field(default_factory=dict)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def substitute(value: str, variables: dict[str, str]) -> str:
    for key, val in variables.items():
        value = value.replace("${" + key + "}", val).replace("$" + key, val)
    return value


def env_pairs(args: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in shlex.split(args):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"ENV without '=' is not supported: {args}")
        pairs[key] = value
    return pairs


class Builder:
    def __init__(self, context: Path, base: Path, scratch: Path) -> None:
        self.context, self.base, self.scratch = context, base, scratch
        self.stages: dict[str, Stage] = {}
        self.mounted: list[Path] = []

    def stage(self, name: str) -> Stage:
        upper, work, merged = (self.scratch / name / d for d in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            d.mkdir(parents=True)
        options = f"lowerdir={self.base},upperdir={upper},workdir={work}"
        self._mount(["-t", "overlay", "overlay", "-o", options, str(merged)], merged)
        self._mount(["-t", "proc", "proc", str(merged / "proc")], merged / "proc")
        self._mount(["--rbind", "/dev", str(merged / "dev")], merged / "dev")
        resolv = merged / "etc" / "resolv.conf"
        if resolv.is_symlink() or resolv.exists():
            resolv.unlink()
        shutil.copyfile("/etc/resolv.conf", resolv)
        stage = Stage(name, upper, merged)
        self.stages[name] = stage
        return stage

    def _mount(self, args: list[str], target: Path) -> None:
        subprocess.run(["mount", *args], check=True)  # noqa: S603, S607 - fixed tool, our paths
        self.mounted.append(target)

    def unmount_all(self) -> None:
        for target in reversed(self.mounted):
            subprocess.run(["umount", "-R", str(target)], check=False)  # noqa: S603, S607
        self.mounted.clear()

    def copy(self, stage: Stage, args: str) -> None:
        words = shlex.split(args)
        source_root = self.context
        if words[0].startswith("--from="):
            source_root = self.stages[words.pop(0).removeprefix("--from=")].merged
        *sources, dest = words
        target = stage.merged / Path(stage.workdir, dest).relative_to("/")
        for source in sources:
            src = source_root / source.lstrip("/")
            into = target / src.name if dest.endswith("/") or len(sources) > 1 else target
            if src.is_dir():
                # A directory's contents, not the directory, as Docker does.
                shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into)

    def run(self, stage: Stage, command: str) -> None:
        env = {"PATH": DEFAULT_PATH, "HOME": "/root"}
        env.update(stage.env)
        env.update({"PIP_CERT": STAGE_CA_BUNDLE, "PIP_DEFAULT_TIMEOUT": "180"})
        shutil.copyfile(HOST_CA_BUNDLE, stage.merged / STAGE_CA_BUNDLE.lstrip("/"))
        script = f"cd {shlex.quote(stage.workdir)} && {command}"
        try:
            subprocess.run(  # noqa: S603 - the Dockerfile's own command, as docker would run it
                [CHROOT, str(stage.merged), "/bin/sh", "-c", script],
                env=env,
                check=True,
            )
        finally:
            (stage.merged / STAGE_CA_BUNDLE.lstrip("/")).unlink(missing_ok=True)

    def build(self, dockerfile: Path, build_args: dict[str, str]) -> Stage:
        variables = dict(build_args)
        current: Stage | None = None
        for index, (word, args) in enumerate(instructions(dockerfile.read_text())):
            sys.stderr.write(f"  {dockerfile.parent.name} [{index + 1}] {word} {args[:90]}\n")
            if word == "ARG":
                key, _, default = args.partition("=")
                variables.setdefault(key, default)
                continue
            if word == "FROM":
                parts = args.split()
                name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else "final"
                current = self.stage(name)
                continue
            if current is None:
                raise ValueError(f"{word} before FROM in {dockerfile}")
            self.apply(current, word, substitute(args, variables))
        if current is None:
            raise ValueError(f"no FROM in {dockerfile}")
        return current

    def apply(self, stage: Stage, word: str, args: str) -> None:
        if word == "ENV":
            # `ENV PATH=/opt/venv/bin:$PATH` extends the stage's own PATH, as in Docker.
            known = {"PATH": DEFAULT_PATH, **stage.env}
            stage.env.update({k: substitute(v, known) for k, v in env_pairs(args).items()})
        elif word == "WORKDIR":
            stage.workdir = str(Path(stage.workdir, args))
            (stage.merged / stage.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            self.copy(stage, args)
        elif word == "RUN":
            self.run(stage, args)
        elif word == "USER":
            stage.config["User"] = args
        elif word == "EXPOSE":
            stage.config.setdefault("ExposedPorts", {})[f"{args}/tcp"] = {}
        elif word == "CMD":
            stage.config["Cmd"] = json.loads(args)
        else:
            raise ValueError(f"unsupported Dockerfile instruction {word}")


def image_config(stage: Stage) -> dict[str, Any]:
    config = dict(stage.config)
    env = {"PATH": DEFAULT_PATH, **stage.env}
    config["Env"] = [f"{k}={v}" for k, v in env.items()]
    config["WorkingDir"] = stage.workdir
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=Path, required=True, help="the repository root")
    parser.add_argument("--base", type=Path, required=True, help="the root filesystem for FROM")
    parser.add_argument("--dockerfile", type=Path, required=True)
    parser.add_argument("--upper", type=Path, required=True, help="where the layer's files go")
    parser.add_argument("--config-out", type=Path, required=True, help="image config JSON")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="jobrelay-dockerfile-", dir=args.upper.parent))
    builder = Builder(args.context.resolve(), args.base.resolve(), scratch)
    try:
        final = builder.build(args.dockerfile, {})
        builder.unmount_all()
        # Put back what the build changed only to run: the base's resolv.conf.
        (final.upper / "etc" / "resolv.conf").unlink(missing_ok=True)
        os.replace(final.upper, args.upper)
        args.config_out.write_text(json.dumps(image_config(final), indent=1))
    finally:
        builder.unmount_all()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
