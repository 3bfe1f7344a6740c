#!/bin/bash
# Entry point of the bevdepth training images (docker/Dockerfile).
#
# 1. Sources the accelerator's environment scripts when the image has them (CANN on npu).
# 2. Applies the image's device defaults (/etc/bevdepth/device.env, generated at build time from
#    bevlaunch's own table), each only where the environment does not set it already: a pod's
#    env or `docker run -e` wins.
# 3. Runs the workload: `python -m bevdepth ARGS` when ARGS start with a bevdepth command or an
#    option, any other program as given (`docker run IMAGE bash`). `exec` keeps no shell in
#    between, so SIGTERM reaches the workload, which saves its checkpoint and exits.
set -euo pipefail

# CANN's scripts read variables that may be unset; the ATB script needs the torch ABI
# (torch 2.1 wheels are built with the pre-C++11 ABI).
set +u
if [[ -f "${ASCEND_TOOLKIT_SET_ENV:=/usr/local/Ascend/ascend-toolkit/set_env.sh}" ]]; then
  # shellcheck source=/dev/null
  source "${ASCEND_TOOLKIT_SET_ENV}"
fi
if [[ -f "${ASCEND_ATB_SET_ENV:=/usr/local/Ascend/nnal/atb/set_env.sh}" ]]; then
  # shellcheck source=/dev/null
  source "${ASCEND_ATB_SET_ENV}" --cxx_abi="${ASCEND_ATB_CXX_ABI:-0}"
fi
set -u

device_env="${BEVDEPTH_DEVICE_ENV:-/etc/bevdepth/device.env}"
if [[ -f "${device_env}" ]]; then
  # shellcheck source=/dev/null
  source "${device_env}"
fi

case "${1:-}" in
  "") set -- python -m bevdepth --help ;;
  -* | prepare | check-data | run | train | eval | bench) set -- python -m bevdepth "$@" ;;
  *) ;;
esac
exec "$@"
