#!/usr/bin/env bash
# Regenerates tests/protos/: Google's BigQuery Storage v1 protos (the Storage Write API's service and
# messages) and the google/api and google/rpc protos they import, which the contract test compiles
# to hold every gRPC call to its method (tests/src/contract/grpc.rs). Not run by the tests: the
# files are vendored, like the discovery documents, and this script says where they came from.
#
#   google/cloud/bigquery/storage/v1/*.proto   npm @google-cloud/bigquery-storage (googleapis' protos)
#   google/api/*.proto, google/rpc/status.proto PyPI googleapis-common-protos
#   google/protobuf/*                           built into the compiler (protox)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
npm_version=5.1.2
pypi_version=1.76.0
out="$root/tests/protos"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack "@google-cloud/bigquery-storage@$npm_version" --silent >/dev/null && tar xzf ./*.tgz)
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "googleapis-common-protos==$pypi_version"
(cd "$work" && python3 -m zipfile -e googleapis_common_protos-*.whl common)

rm -rf "$out" && mkdir -p "$out/google/cloud/bigquery/storage/v1" "$out/google/api" "$out/google/rpc"
for f in annotations arrow avro protobuf storage stream table; do
  cp "$work/package/build/protos/google/cloud/bigquery/storage/v1/$f.proto" "$out/google/cloud/bigquery/storage/v1/"
done
for f in annotations client field_behavior http launch_stage resource; do
  cp "$work/common/google/api/$f.proto" "$out/google/api/"
done
cp "$work/common/google/rpc/status.proto" "$out/google/rpc/"
cat > "$out/SOURCE" <<SRC
google/cloud/bigquery/storage/v1: npm @google-cloud/bigquery-storage $npm_version (build/protos)
google/api, google/rpc: PyPI googleapis-common-protos $pypi_version
regenerate: scripts/vendor-protos.sh
SRC
echo "vendor-protos: $(find "$out" -name '*.proto' | wc -l) protos in $out"
