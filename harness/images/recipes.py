"""What goes into each baked image: which host binary, where, and how it starts.

The tag carries the binary's own version (``harness/anvil:1.7.1``, ``harness/haproxy:2.6``),
read from the binary, so an image never claims a version it does not hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, MissingBinaryError

REPOSITORY = "harness"
_ETC = {
    "/etc/passwd": (
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
    ),
    "/etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "/etc/nsswitch.conf": "hosts: files dns\n",
}


@dataclass(frozen=True)
class Recipe:
    """One image: its name, where its binary comes from, its version, how it starts."""

    name: str
    binary_name: str
    image_path: str  # where the binary lives in the image
    how_to_get: str
    version_args: tuple[str, ...]
    version_pattern: str  # group 1 of this regex over the version output is the tag
    entrypoint: tuple[str, ...] = ()
    expose: tuple[int, ...] = ()
    dirs: tuple[str, ...] = ()
    search_path: str = ""  # beyond PATH
    texts: dict[str, str] = field(default_factory=dict)

    def binary(self, given: Path | None = None) -> Path:
        """The host binary to bake: ``given``, else found on PATH (and ``search_path``)."""
        if given is not None:
            if not given.is_file():
                raise ConfigError(f"{self.name} binary", str(given), "no such file")
            return given
        found = shutil.which(self.binary_name) or (
            shutil.which(self.binary_name, path=self.search_path) if self.search_path else None
        )
        if found is None:
            raise MissingBinaryError(self.binary_name, self.how_to_get)
        return Path(found)

    def version(self, binary: Path) -> str:
        """The binary's version, as the image's tag."""
        proc = subprocess.run(
            [str(binary), *self.version_args], capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        match = re.search(self.version_pattern, proc.stdout + proc.stderr)
        if match is None:
            raise ConfigError(
                f"{self.name} binary",
                str(binary),
                f"`{binary.name} {' '.join(self.version_args)}` printed no version "
                f"({(proc.stdout + proc.stderr).strip()[:120]!r}); is it {self.binary_name}?",
            )
        return match.group(1)

    def tag(self, version: str) -> str:
        return f"{REPOSITORY}/{self.name}:{version}"

    def changes(self) -> list[str]:
        """The Dockerfile instructions ``docker import`` applies to the root filesystem."""
        out = [f"ENTRYPOINT {json.dumps(list(self.entrypoint))}"] if self.entrypoint else []
        out += [f"EXPOSE {port}" for port in self.expose]
        return out

    def fingerprint(self, binary: Path, version: str) -> str:
        """What the image is made of: recipe, binary content, version. Same inputs, same
        fingerprint: a bake skips an image that already holds it."""
        digest = hashlib.sha256()
        inputs = [self.name, self.image_path, self.entrypoint, self.expose, self.dirs]
        digest.update(json.dumps([*inputs, sorted(self.texts.items()), version]).encode())
        with open(binary.resolve(), "rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()[:16]


def _venv_bin() -> str:
    import sys

    return str(Path(sys.executable).parent)


RECIPES: dict[str, Recipe] = {
    "anvil": Recipe(
        name="anvil",
        binary_name="anvil",
        image_path="/usr/local/bin/anvil",
        how_to_get="run `make setup` (it installs anvil 1.7.1 from npm into .tools)",
        version_args=("--version",),
        version_pattern=r"(\d+\.\d+\.\d+)",
        entrypoint=("/usr/local/bin/anvil",),
        expose=(8545,),
        dirs=("/data",),
        search_path=_venv_bin(),
        texts=dict(_ETC),
    ),
    "haproxy": Recipe(
        name="haproxy",
        binary_name="haproxy",
        image_path="/usr/sbin/haproxy",
        how_to_get="install it with `apt-get install haproxy`",
        version_args=("-v",),
        version_pattern=r"HAProxy version (\d+\.\d+)",
        entrypoint=("/usr/sbin/haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"),
        expose=(8545,),
        dirs=("/usr/local/etc/haproxy", "/run/haproxy", "/var/lib/haproxy"),
        search_path="/usr/sbin:/usr/local/sbin",
        texts=dict(_ETC),
    ),
    # compose.test.yml's Prometheus, on the baked override; the same entrypoint and paths as
    # the prom/prometheus image, so one compose service definition runs on either.
    "prometheus": Recipe(
        name="prometheus",
        binary_name="prometheus",
        image_path="/bin/prometheus",
        how_to_get="install it with `apt-get install prometheus`",
        version_args=("--version",),
        version_pattern=r"version (\d+\.\d+\.\d+)",
        entrypoint=(
            "/bin/prometheus",
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--web.listen-address=0.0.0.0:9090",
        ),
        expose=(9090,),
        dirs=("/etc/prometheus", "/prometheus"),
        texts=dict(_ETC),
    ),
    # Baked only from a binary the user gives (`--binary erigon=PATH`): none is on this host.
    "erigon": Recipe(
        name="erigon",
        binary_name="erigon",
        image_path="/usr/local/bin/erigon",
        how_to_get="give one with `--binary erigon=PATH` (releases: github.com/erigontech/erigon)",
        version_args=("--version",),
        version_pattern=r"(\d+\.\d+\.\d+)",
        entrypoint=("/usr/local/bin/erigon",),
        expose=(8545,),
        dirs=("/data",),
        texts=dict(_ETC),
    ),
    "toxiproxy": Recipe(
        name="toxiproxy",
        binary_name="toxiproxy-server",
        image_path="/usr/local/bin/toxiproxy-server",
        how_to_get="give one with `--binary toxiproxy=PATH` (github.com/Shopify/toxiproxy)",
        version_args=("-version",),
        version_pattern=r"(\d+\.\d+\.\d+)",
        entrypoint=("/usr/local/bin/toxiproxy-server", "-host", "0.0.0.0"),
        expose=(8474,),
        texts=dict(_ETC),
    ),
}
#: What `harness images bake` builds when no names are given: what the docker stack and
#: compose.baked.yml run.
DEFAULT_RECIPES = ("anvil", "haproxy", "prometheus")


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError("image", name, f"choose one of: {', '.join(RECIPES)}") from None


#: The tags the docker stack runs: what `make setup` pins (anvil 1.7.1) and Debian 12 ships
#: (HAProxy 2.6). HARNESS_IMAGE_ANVIL / HARNESS_IMAGE_HAPROXY choose others.
STACK_IMAGES = {"anvil": "harness/anvil:1.7.1", "haproxy": "harness/haproxy:2.6"}


def stack_image(name: str) -> str:
    """The image the docker stack runs for ``name``: $HARNESS_IMAGE_<NAME> or the default."""
    return os.environ.get(f"HARNESS_IMAGE_{name.upper()}") or STACK_IMAGES[name]
