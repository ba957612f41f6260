#!/usr/bin/env bash
# Static checks of the Terraform root module in terraform/, runnable from any directory:
#   1. terraform fmt -check (lists the files that need `terraform fmt -recursive terraform`);
#   2. routing.json: the three subscription filters exist and fit Pub/Sub's 256-byte limit;
#   3. checkov (pinned, installed once into .emulators/checkov-venv from PyPI): every failing check
#      fails the script unless skipped in the .tf file itself with `#checkov:skip=CKV_…:reason`;
#   4. terraform init -backend=false + terraform validate, when the provider registry is reachable
#      (it is not on the development machines: then validate is reported as SKIPPED, not failed).
# Every step runs and prints one summary line; the exit code is 1 if any step failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tf_dir=terraform
checkov_version=3.3.30
venv="$root/.emulators/checkov-venv"
python=${PYTHON:-python3}
failed=()

say() { echo "terraform-check: $*"; }
command -v terraform >/dev/null || { say "no terraform on PATH"; exit 1; }
command -v "$python" >/dev/null || { say "no $python on PATH (checkov comes from PyPI)"; exit 1; }
# A CLI configuration variable that names a missing file only adds a warning to every command.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then unset TF_CLI_CONFIG_FILE; fi
export TF_IN_AUTOMATION=1
# Keep terraform's working data (.terraform/) out of the work tree.
export TF_DATA_DIR="$root/.emulators/terraform-data"

# --- 1. formatting ------------------------------------------------------------------------------
if unformatted=$(terraform fmt -check -recursive -list=true -no-color "$tf_dir"); then
  say "fmt: OK"
else
  echo "$unformatted" | sed '/^$/d; s/^/  needs terraform fmt: /'
  say "fmt: FAILED (run: terraform fmt -recursive $tf_dir)"
  failed+=(fmt)
fi

# --- 2. routing filters -------------------------------------------------------------------------
if "$python" - "$tf_dir/routing.json" <<'PY'; then
import json, sys
path = sys.argv[1]
routing = json.load(open(path))
want = {"to-gcs", "to-bq", "sub-v2"}
problems = []
if set(routing) != want:
    problems.append(f"keys are {sorted(routing)}, want {sorted(want)}")
for name, entry in routing.items():
    f = entry.get("filter") if isinstance(entry, dict) else None
    if not isinstance(f, str) or not f.strip():
        problems.append(f"{name}: no filter string")
    elif len(f.encode()) > 256:
        problems.append(f"{name}: filter is {len(f.encode())} bytes, Pub/Sub allows 256")
for p in problems:
    print(f"  {path}: {p}")
sys.exit(1 if problems else 0)
PY
  say "routing.json: OK (3 filters, each <= 256 bytes)"
else
  say "routing.json: FAILED"
  failed+=(routing)
fi

# --- 3. checkov ---------------------------------------------------------------------------------
checkov_ok=true
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null || true)
if [[ "$installed" != "$checkov_version" ]]; then
  say "installing checkov $checkov_version into $venv (once; a minute or two)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
fi
# Skips live next to the code they excuse, each with its reason; no config file may skip checks.
bad_skips=$(grep -rnE --include='*.tf' 'checkov:skip=' "$tf_dir" | grep -vE 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+:[[:space:]]*[^[:space:]]' || true)
if [[ -n "$bad_skips" ]]; then
  echo "$bad_skips" | sed 's/^/  skip without a reason: /'
  checkov_ok=false
fi
for cfg in .checkov.yaml .checkov.yml "$tf_dir/.checkov.yaml" "$tf_dir/.checkov.yml"; do
  if [[ -f "$cfg" ]] && grep -qE '^[[:space:]]*(skip-check|soft-fail)' "$cfg"; then
    echo "  $cfg skips checks or soft-fails: skip inline in the .tf file instead, with a reason"
    checkov_ok=false
  fi
done
skips=$(grep -rhoE --include='*.tf' 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+' "$tf_dir" | sort -u | sed 's/checkov:skip=//' | paste -sd, - || true)
if ! out=$("$venv/bin/checkov" -d "$tf_dir" --framework terraform --skip-download --compact --quiet 2>&1); then
  echo "$out" | sed 's/^/  /'
  checkov_ok=false
fi
summary=$(echo "$out" | grep -m1 -E 'Passed checks: [0-9]+' | sed 's/^[[:space:]]*//' || true)
if grep -qE 'Parsing errors: [1-9]' <<<"$summary"; then
  echo "$out" | sed 's/^/  /'
  echo "  checkov could not parse every file: a file it cannot read is a file it did not check"
  checkov_ok=false
fi
if $checkov_ok; then
  say "checkov $checkov_version: OK (${summary:-no summary}; inline skips: ${skips:-none})"
else
  say "checkov $checkov_version: FAILED (${summary:-see above})"
  failed+=(checkov)
fi

# --- 4. terraform validate ----------------------------------------------------------------------
if init_out=$(terraform -chdir="$tf_dir" init -backend=false -input=false -no-color 2>&1); then
  if validate_out=$(terraform -chdir="$tf_dir" validate -no-color 2>&1); then
    say "terraform validate: OK"
  else
    echo "$validate_out" | sed 's/^/  /'
    say "terraform validate: FAILED"
    failed+=(validate)
  fi
elif grep -qE 'could not connect to registry|Failed to query available provider packages|Failed to install provider' <<<"$init_out"; then
  grep -E 'could not connect|no such host|timeout' <<<"$init_out" | head -n 3 | sed 's/^[[:space:]]*/  /' || true
  say "terraform validate: SKIPPED — provider registry unreachable here (init failed)"
else
  echo "$init_out" | sed 's/^/  /'
  say "terraform validate: FAILED (terraform init failed for another reason than the registry)"
  failed+=(init)
fi

if ((${#failed[@]})); then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "all checks passed"
