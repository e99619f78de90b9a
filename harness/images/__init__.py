"""Images baked offline: small root filesystems from binaries this machine already has.

No registry is reachable on the machines this harness is proven on, so ``harness images
bake`` builds each image the docker backend needs from a host binary, its shared libraries
(as ``ldd`` finds them) and a few /etc files, and ``docker import``s the tarball.
"""

from harness.images.bake import BakeResult, bake, bake_all, require_images
from harness.images.recipes import RECIPES, STACK_IMAGES, Recipe, recipe, stack_image
from harness.images.rootfs import parse_ldd, rootfs_tar

__all__ = [
    "RECIPES",
    "STACK_IMAGES",
    "BakeResult",
    "Recipe",
    "bake",
    "bake_all",
    "parse_ldd",
    "recipe",
    "require_images",
    "rootfs_tar",
    "stack_image",
]
