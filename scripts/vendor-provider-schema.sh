#!/usr/bin/env bash
# Regenerates terraform/schema/google-<provider version>.json: the Terraform schema of the google
# provider's resource and data-source types that terraform/**/*.tf declares (arguments with
# required/optional, computed-only attributes, nested blocks with their nesting and item limits),
# which tests/tests/terraform_schema.rs holds terraform/ to, offline (`terraform validate` needs
# the provider registry, which is not reachable here).
#
# The schema comes from PyPI's cdktf-cdktf-provider-google, the CDK for Terraform bindings
# generated from the provider's own schema (16.12.1 is hashicorp/google 6.50.0): the wheel's jsii
# assembly and generated JavaScript are read by scripts/provider_schema.py. Not run by the tests:
# the output is vendored. Run it again after declaring a resource or data-source type that
# terraform/ did not use before, or with PACKAGE_VERSION=... for another provider release (the
# output file is named after the provider version; delete the old one and update the test's
# SCHEMA path). Idempotent: with nothing changed the output is byte for byte the same.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
package=cdktf-cdktf-provider-google
version=${PACKAGE_VERSION:-16.12.1}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$work" "$package==$version"
wheel=$(ls "$work"/*.whl)
provider_version=$(
  "$python" - "$wheel" <<'PY'
import io, json, re, sys, tarfile, zipfile
z = zipfile.ZipFile(sys.argv[1])
tgz = next(n for n in z.namelist() if re.search(r"/_jsii/[^/]+\.jsii\.tgz$", n))
with tarfile.open(fileobj=io.BytesIO(z.read(tgz)), mode="r:gz") as t:
    print(json.load(t.extractfile("package/package.json"))["cdktf"]["provider"]["version"])
PY
)
out="$root/terraform/schema/google-$provider_version.json"
"$python" "$root/scripts/provider_schema.py" "$wheel" "$root/terraform" "$out"
