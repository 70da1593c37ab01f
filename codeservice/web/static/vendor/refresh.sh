#!/bin/sh
# Refresh the vendored QR encoder from the npm registry (run by hand, then review the diff).
#
#   codeservice/web/static/vendor/refresh.sh [VERSION]
#
# `npm pack` fetches the package's tarball and checks it against the
# registry's integrity hash; only the package's own distributed file,
# dist/qrcode.js (a plain script that defines the global `qrcode`, no
# bundler needed), is kept, with its licence and the version beside it.
set -eu

NAME=qrcode-generator
VERSION=${1:-2.0.4}
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
cp package/dist/qrcode.js "$DEST/qrcode.js"
# The package ships no LICENSE file: its licence is the MIT notice at the top
# of qrcode.js (Copyright (c) 2009 Kazuhiko Arase), written out in full here.
cat > "$DEST/LICENSE" <<LICENSE_TEXT
MIT License

Copyright (c) 2009 Kazuhiko Arase

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
LICENSE_TEXT
cat > "$DEST/VENDOR.txt" <<VENDOR_TEXT
name: $NAME
version: $VERSION
licence: $LICENSE (see LICENSE; the notice is also at the top of qrcode.js)
source: https://www.npmjs.com/package/$NAME ($TARBALL, dist/qrcode.js, unmodified)
integrity: $INTEGRITY
sha256 of qrcode.js: $(sha256sum "$DEST/qrcode.js" | cut -d' ' -f1)
upstream: https://github.com/kazuhikoarase/qrcode-generator
refreshed by: codeservice/web/static/vendor/refresh.sh $VERSION
VENDOR_TEXT
echo "vendored $NAME $VERSION into $DEST"
