#!/bin/sh
# Refresh the vendored axe-core (tests only: the accessibility test injects it
# into every page with Playwright; the service never serves it).
#
#   tests/vendor/refresh.sh [VERSION]
#
# `npm pack` fetches the package's tarball from the npm registry and checks it
# against the registry's integrity hash; only axe.min.js (the package's own
# distributed build), its LICENSE (MPL-2.0) and LICENSE-3RD-PARTY.txt are kept.
set -eu

NAME=axe-core
VERSION=${1:-4.14.1}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="$HERE/$NAME"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm pack --silent "$NAME@$VERSION" >/dev/null
TARBALL="$NAME-$VERSION.tgz"
INTEGRITY=$(npm view "$NAME@$VERSION" dist.integrity)
LICENSE=$(npm view "$NAME@$VERSION" license)
tar xzf "$TARBALL"
test "$(node -p "require('./package/package.json').version")" = "$VERSION"

mkdir -p "$DEST"
cp package/axe.min.js package/LICENSE package/LICENSE-3RD-PARTY.txt "$DEST/"
cat > "$DEST/VENDOR.txt" <<VENDOR_TEXT
name: $NAME
version: $VERSION
licence: $LICENSE (see LICENSE; LICENSE-3RD-PARTY.txt for what it bundles)
source: https://www.npmjs.com/package/$NAME ($TARBALL, axe.min.js, unmodified)
integrity: $INTEGRITY
sha256 of axe.min.js: $(sha256sum "$DEST/axe.min.js" | cut -d' ' -f1)
use: tests only (tests/service/test_accessibility.py injects it); never served
refreshed by: tests/vendor/refresh.sh $VERSION
VENDOR_TEXT
echo "vendored $NAME $VERSION into $DEST"
