"""Baking: a recipe's root filesystem, imported into the daemon as a labelled image.

Idempotent: an image whose fingerprint label matches the recipe's inputs is kept (the
bake says "present"); ``force`` rebuilds it. Each result says how long it took.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine.client import connect
from harness.engine.labels import LABEL_IMAGE, LABEL_RECIPE
from harness.errors import ConfigError
from harness.images.recipes import DEFAULT_RECIPES, Recipe, recipe
from harness.images.rootfs import rootfs_tar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BakeResult:
    """One image after a bake: its tag, whether it was built or already there, how long."""

    name: str
    tag: str
    action: str  # "built", "rebuilt" (inputs changed or --force), "present"
    took_s: float
    size_bytes: int | None = None


def _existing(client: Any, tag: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def bake(
    r: Recipe, *, client: Any | None = None, binary: Path | None = None, force: bool = False
) -> BakeResult:
    """Build ``r``'s image unless one with the same inputs is there (or ``force``)."""
    started = time.monotonic()
    client = client or connect()
    host_binary = r.binary(binary)
    version = r.version(host_binary)
    tag = r.tag(version)
    fingerprint = r.fingerprint(host_binary, version)
    old = _existing(client, tag)
    if old is not None and not force and old.labels.get(LABEL_RECIPE) == fingerprint:
        return BakeResult(r.name, tag, "present", time.monotonic() - started, old.attrs["Size"])
    labels = {
        LABEL_IMAGE: r.name,
        LABEL_RECIPE: fingerprint,
        "org.opencontainers.image.version": version,
    }
    changes = r.changes() + [f"LABEL {key}={value}" for key, value in labels.items()]
    with tempfile.TemporaryDirectory(prefix=f"harness-bake-{r.name}-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        rootfs_tar(tarball, binaries={r.image_path: host_binary}, texts=r.texts, dirs=r.dirs)
        repository, _, image_tag = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=image_tag, changes=changes
        )
    image = client.images.get(tag)
    if image.labels.get(LABEL_RECIPE) != fingerprint:  # the daemon ignored a change
        raise ConfigError("image", tag, "the daemon imported it without its labels")
    if old is not None and old.id != image.id:
        try:
            client.images.remove(old.id, noprune=False)
        except Exception as exc:  # still used by a container: it goes when that does
            log.info("kept the previous %s image %s: %s", tag, old.id[:19], exc)
    took = time.monotonic() - started
    log.info("baked %s in %.2fs", tag, took)
    return BakeResult(r.name, tag, "built" if old is None else "rebuilt", took, image.attrs["Size"])


def bake_all(
    names: Sequence[str] = DEFAULT_RECIPES,
    *,
    binaries: Mapping[str, Path] = {},
    force: bool = False,
) -> list[BakeResult]:
    """Bake each named image in order; `ConfigError` for an unknown name or binary."""
    unknown = sorted(set(binaries) - set(names))
    if unknown:
        raise ConfigError("--binary", unknown[0], f"not an image being baked ({', '.join(names)})")
    recipes = [recipe(n) for n in names]
    client = connect()
    try:
        return [bake(r, client=client, binary=binaries.get(r.name), force=force) for r in recipes]
    finally:
        client.close()


def require_images(client: Any, tags: Sequence[str]) -> None:
    """`ConfigError` naming the missing image and the bake command, before anything starts:
    nothing can be pulled here, so a missing image is never fetched."""
    missing = [t for t in tags if _existing(client, t) is None]
    if missing:
        names = " ".join(t.split("/", 1)[-1].split(":", 1)[0] for t in missing)
        raise ConfigError(
            "image",
            missing[0],
            f"not in the Docker daemon and no registry is used; bake it with "
            f"`harness images bake {names}`",
        )
