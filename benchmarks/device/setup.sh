# Source this on the GPU machine, from the repo root: installs the carried wheels (.whl/, e.g. Ray from
# benchmarks/device/prepare_ray_wheels.sh) into /tmp/site and puts them and src/ on PYTHONPATH, so that
# `nsr` and `python -m nsr.cli.main` run this checkout.
#   source benchmarks/device/setup.sh
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nsr() { python3 -m nsr.cli.main "$@"; }
# NVLink multicast stays off on the multi-GPU kinds (see the device README); set here for Ray's workers too.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
