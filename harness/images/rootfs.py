"""A root filesystem as a tarball: binaries, the shared libraries they load, /etc files.

Pure of Docker: `rootfs_tar` writes a tar that ``docker import`` turns into an image.
Libraries are stored at the path ``ldd`` names (the loader looks there), with the content
of the file it resolves to, so merged-/usr symlinks on the host do not matter.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.errors import ConfigError

_ARROW = re.compile(r"^\s*\S+\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_BARE = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def parse_ldd(text: str) -> list[str]:
    """The absolute library paths in ``ldd`` output, in order, without duplicates.
    ``linux-vdso`` (in the kernel) and ``not found`` lines carry no path and are skipped;
    the caller checks for ``not found`` separately."""
    paths: list[str] = []
    for line in text.splitlines():
        match = _ARROW.match(line) or _BARE.match(line)
        if match and match.group(1) not in paths:
            paths.append(match.group(1))
    return paths


def shared_libraries(binary: Path) -> list[str]:
    """The libraries ``binary`` loads; `ConfigError` if one cannot be found on this host."""
    proc = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, timeout=30, check=False
    )
    if "not a dynamic executable" in proc.stdout + proc.stderr:
        return []  # statically linked: nothing to copy
    if proc.returncode != 0:
        raise ConfigError("binary", str(binary), f"ldd failed: {proc.stderr.strip()[-300:]}")
    missing = [line.split()[0] for line in proc.stdout.splitlines() if "not found" in line]
    if missing:
        raise ConfigError(
            "binary", str(binary), f"its libraries are missing here: {', '.join(missing)}"
        )
    return parse_ldd(proc.stdout)


def _add_dir(tar: tarfile.TarFile, path: str, seen: set[str], mode: int = 0o755) -> None:
    parts = Path(path.lstrip("/")).parts
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name in seen:
            continue
        seen.add(name)
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode if i == len(parts) else 0o755
        tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, path: str, data: bytes, mode: int, seen: set[str]) -> None:
    parent = str(Path(path).parent)
    if parent != "/":
        _add_dir(tar, parent, seen)
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))
    seen.add(path.lstrip("/"))


def rootfs_tar(
    out: Path,
    *,
    binaries: Mapping[str, Path],
    texts: Mapping[str, str] = {},
    dirs: Iterable[str] = (),
) -> int:
    """Write a root filesystem to ``out``: each binary at its image path (key) with its
    libraries, each text file, each directory (/tmp sticky). Returns the tarball's bytes."""
    seen: set[str] = set()
    with tarfile.open(out, "w") as tar:
        _add_dir(tar, "/tmp", seen, mode=0o1777)
        for d in dirs:
            _add_dir(tar, d, seen)
        libraries: list[str] = []
        for image_path, host_path in binaries.items():
            if not host_path.is_file():
                raise ConfigError("binary", str(host_path), "no such file")
            _add_bytes(tar, image_path, host_path.resolve().read_bytes(), 0o755, seen)
            libraries += [lib for lib in shared_libraries(host_path) if lib not in libraries]
        for lib in libraries:
            if lib.lstrip("/") not in seen:
                _add_bytes(tar, lib, Path(lib).resolve().read_bytes(), 0o755, seen)
        for image_path, text in texts.items():
            _add_bytes(tar, image_path, text.encode(), 0o644, seen)
    return out.stat().st_size
