#!/bin/sh
# Vendors Swagger UI for the BFF's /docs page, reproducibly: the pinned
# swagger-ui-dist release from the npm registry, checked against the sha512
# integrity the registry publishes for it, of which only the two files /docs
# loads are kept, gzipped (the BFF serves them as they are to browsers that
# accept gzip, which all do, and inflates them for the rest). Nothing is
# fetched at run time.
#
# To upgrade: set VERSION, set INTEGRITY to the output of
#   npm view swagger-ui-dist@$VERSION dist.integrity
# run this script, and commit assets/swagger-ui/. The Go tests check the
# committed files against assets/swagger-ui/SHA256SUMS, which this script
# writes (digests of the uncompressed files).
set -eu

VERSION=5.35.0
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==

cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$tmp/swagger-ui-dist-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 | tr -d '\n')"
if [ "$got" != "$INTEGRITY" ]; then
	echo "vendor.sh: swagger-ui-dist@$VERSION: integrity $got, want $INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tarball" -C "$tmp"

out=assets/swagger-ui
rm -rf "$out"
mkdir -p "$out"
for f in swagger-ui-bundle.js swagger-ui.css; do
	# The source-map comment points at a file that is not vendored: drop it,
	# so a browser's developer tools do not ask for it.
	sed -e '/^\/[*\/]# sourceMappingURL=/d' "$tmp/package/$f" > "$tmp/$f"
	gzip -9 -n < "$tmp/$f" > "$out/$f.gz"
	(cd "$tmp" && sha256sum "$f") >> "$out/SHA256SUMS"
done
cp "$tmp/package/LICENSE" "$out/LICENSE"
printf 'swagger-ui-dist %s\n%s\n' "$VERSION" "$INTEGRITY" > "$out/VERSION"
echo "vendored swagger-ui-dist@$VERSION into $(pwd)/$out"
