"""Baking's pure parts: what ldd says, what goes in the root filesystem, fingerprints."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.images.recipes import RECIPES
from harness.images.rootfs import parse_ldd, rootfs_tar

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd5a1f0000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1c2a000000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c29e00000)
\tlibmissing.so.2 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f1c2a100000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c29e00000)
"""


def test_ldd_output_gives_each_library_path_once_and_skips_the_vdso() -> None:
    assert parse_ldd(LDD) == [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]


@given(st.text())
def test_any_text_parses_to_absolute_paths_only(text: str) -> None:
    assert all(p.startswith("/") for p in parse_ldd(text))


def test_the_root_filesystem_holds_the_binary_its_libraries_and_the_etc_files(
    tmp_path: Path,
) -> None:
    out = tmp_path / "rootfs.tar"
    python = Path(sys.executable).resolve()
    texts = {"/etc/passwd": "root:x:0:0::/:\n"}
    rootfs_tar(out, binaries={"/usr/local/bin/py": python}, texts=texts, dirs=("/data",))
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert {"usr/local/bin/py", "etc/passwd", "data", "tmp"} <= names
        assert any(n.endswith("libc.so.6") for n in names)
        assert tar.getmember("tmp").mode == 0o1777
        assert tar.getmember("usr/local/bin/py").mode == 0o755


def test_a_fingerprint_changes_with_the_binary_and_the_version(tmp_path: Path) -> None:
    recipe = RECIPES["anvil"]
    one, two = tmp_path / "a", tmp_path / "b"
    one.write_bytes(b"one")
    two.write_bytes(b"two")
    assert recipe.fingerprint(one, "1.0.0") == recipe.fingerprint(one, "1.0.0")
    assert recipe.fingerprint(one, "1.0.0") != recipe.fingerprint(two, "1.0.0")
    assert recipe.fingerprint(one, "1.0.0") != recipe.fingerprint(one, "1.0.1")


def test_import_changes_start_the_binary_and_expose_its_port() -> None:
    assert RECIPES["anvil"].changes() == ['ENTRYPOINT ["/usr/local/bin/anvil"]', "EXPOSE 8545"]
