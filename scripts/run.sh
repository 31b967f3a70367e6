#!/usr/bin/env bash
# `make run [PROFILE=redis|rabbitmq|kafka|azure] [WORKER=python|go|both]`: the profile's broker and store (each
# started only if nothing answers on its port yet; scripts/profile.sh), then every app with
# its sidecar through `dapr run -f` in the foreground, on components/<PROFILE>/. Ctrl-C stops
# the apps and sidecars, and the servers this script started; servers that were already
# running are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/versions.sh

profile=${JOBRELAY_PROFILE:-redis}
worker=${JOBRELAY_WORKER:-python}
case $worker in python|go|both) ;; *) echo "run: WORKER=$worker: pick python, go or both" >&2; exit 2 ;; esac
state_dir=${JOBRELAY_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/jobrelay}
runtime=$(scripts/dapr-build.sh | tail -n 1)

# daprd inherits this shell's environment (not the run file's env:), so what the component
# files read through envRef is exported here.
export DAPR_RUNTIME_PATH=$runtime
cleanup() {
  scripts/profile.sh down "$profile" "$state_dir"
}
trap cleanup EXIT
settings=$(scripts/profile.sh up "$profile" "$state_dir")
while IFS= read -r setting; do
  [[ -n "$setting" ]] && export "${setting?}"
done <<<"$settings"
echo "run: profile $profile, worker $worker; intake http://127.0.0.1:8000, status http://127.0.0.1:8001"

# Fresh tokens per run, unless the shell brings its own. daprd and the apps both inherit
# them: every sidecar's API then answers only callers with DAPR_API_TOKEN (the apps' SDK
# sends it), and every app's sidecar routes only its sidecar (APP_API_TOKEN). Nothing else
# on this machine can publish a job message or read job records through a sidecar.
export DAPR_API_TOKEN=${DAPR_API_TOKEN:-$(head -c 32 /dev/urandom | base64 | tr -d '/+=')}
export APP_API_TOKEN=${APP_API_TOKEN:-$(head -c 32 /dev/urandom | base64 | tr -d '/+=')}

# The key daprd encrypts the state store with (job records with their inputs and results,
# uploads; read through components/common/keystore.yaml). Made once and kept beside the data
# it encrypts: a new key per run would leave the jobs of earlier runs unreadable.
key_file=$state_dir/state.key
if [[ -z ${JOBRELAY_KEY_STATE:-} ]]; then
  if [[ ! -s $key_file ]]; then
    (umask 077 && mkdir -p "$state_dir" && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key_file")
  fi
  JOBRELAY_KEY_STATE=$(<"$key_file")
  export JOBRELAY_KEY_STATE
fi

# dapr.yaml runs the redis profile with the Python worker; another profile or worker gets a
# copy naming its folder and its worker (beside dapr.yaml, because the apps' paths in it are
# relative to the run file; gitignored). WORKER=go runs the Go worker (apps/worker-go) in
# place of the Python one, WORKER=both runs the two side by side on one consumer group.
run_file=dapr.yaml
if [[ $profile != redis || $worker != python ]]; then
  binary=none
  [[ $worker == python ]] || binary=$(scripts/worker-go-build.sh | tail -n 1)
  run_file=.dapr-run.$profile.$worker.yaml
  .venv/bin/python -m scripts.runfile "$profile" "$worker" "$binary" >"$run_file"
fi

"$runtime/.dapr/bin/dapr" run -f "$run_file" &
cli=$!
# The CLI moves itself into a process group of its own (to stop its children as one), so a
# terminal's Ctrl-C reaches this script but never the CLI: pass it on, then wait until the
# CLI has stopped every app and sidecar before the EXIT trap stops the servers.
trap 'kill -INT "$cli" 2>/dev/null' INT TERM
set +e
while kill -0 "$cli" 2>/dev/null; do
  wait "$cli"
done
# A CLI that died without stopping its children (killed, or of SIGPIPE once the reader of
# `make run | tee log` was gone) leaves them in its process group: stop them too.
kill -TERM -- "-$cli" 2>/dev/null
