#!/usr/bin/env bash
# Ray for the GPU machine (`nsr batch`'s optional engine) and NSR's dependencies missing there (tyro, trimesh),
# carried as wheels: the machine has Python 3.12 and no network, and everything carried travels in one 64 MiB
# transfer, but Ray's wheel is 79 MB. This
# downloads it (and the pure-Python packages Ray imports that the GPU image lacks: jsonschema and its
# dependencies), then repacks Ray without what a Python-only local or cluster run never loads (the Java
# jars, RLlib, Ray Data / Serve / Tune / Train / LLM), with the symbol tables of its binaries stripped and
# LZMA compression (benchmarks/device/slim_wheel.py): about 27 MB for Ray, 28 MB in all.
#
#   bash benchmarks/device/prepare_ray_wheels.sh            # -> .whl/ (git-ignored), for Python 3.12
#   PY=311 bash benchmarks/device/prepare_ray_wheels.sh /tmp/whl311   # the same for this machine's 3.11
#
# On the device machine `source benchmarks/device/setup.sh` installs them with the usual line:
#   python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
# Needs pip and binutils' `strip` here. RAY_VERSION (default 2.60.0) picks another release.
set -euo pipefail
OUT=${1:-.whl}
PY=${PY:-312}
RAY_VERSION=${RAY_VERSION:-2.60.0}
HERE=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

download() {  # PACKAGE...: wheels for CPython $PY on x86-64 Linux, without their dependencies
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$work" "$@"
}
download "ray==$RAY_VERSION"
# Ray imports jsonschema at `import ray` (its runtime-environment schemas); the GPU image has attrs,
# typing-extensions and Ray's other dependencies (click, filelock, msgpack, packaging, protobuf, pyyaml,
# requests), not these.
download jsonschema jsonschema-specifications referencing rpds-py
cp "$work"/jsonschema*.whl "$work"/referencing-*.whl "$work"/rpds_py-*.whl "$OUT"/
# NSR's own dependencies that the GPU image lacks (checked 2026-12-06: `import nsr.cli.train` failed on tyro,
# the batch's evaluation on trimesh): pure-Python wheels.
download tyro docstring-parser shtab typeguard trimesh
cp "$work"/tyro-*.whl "$work"/docstring_parser-*.whl "$work"/shtab-*.whl "$work"/typeguard-*.whl \
  "$work"/trimesh-*.whl "$OUT"/

# Folders of the Ray wheel that `ray.init()` and remote tasks never import (checked by the import of ray,
# a local instance and tasks from the slimmed wheel; see docs/batch.md).
python3 "$HERE/slim_wheel.py" "$work"/ray-"$RAY_VERSION"-*.whl "$OUT" --strip \
  --drop ray/jars ray/rllib ray/data ray/serve ray/tune ray/train ray/llm
ls -l "$OUT"
du -ch "$OUT"/*.whl | tail -1
