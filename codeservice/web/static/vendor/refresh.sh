#!/bin/sh
# Refresh the vendored QR encoder (qrcode-generator, for /code) and decoder (jsQR, for /scanner) from the
# npm registry (run by hand, then review the diff).
#
#   codeservice/web/static/vendor/refresh.sh [QRCODE_GENERATOR_VERSION [JSQR_VERSION]]
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

# The QR decoder of /scanner: jsQR, the package's own UMD build dist/jsQR.js
# (defines the global `jsQR`; pure JavaScript, so the pages' CSP needs no
# 'wasm-unsafe-eval'), unmodified, with the package's LICENSE (Apache-2.0).
#
#   codeservice/web/static/vendor/refresh.sh [QRCODE_GENERATOR_VERSION [JSQR_VERSION]]
JSQR=jsqr
JSQR_VERSION=${2:-1.4.0}
JSQR_DEST="$HERE/$JSQR"
cd "$WORK"
rm -rf package
npm pack --silent "$JSQR@$JSQR_VERSION" >/dev/null
JSQR_TARBALL="$JSQR-$JSQR_VERSION.tgz"
JSQR_INTEGRITY=$(npm view "$JSQR@$JSQR_VERSION" dist.integrity)
JSQR_LICENSE=$(npm view "$JSQR@$JSQR_VERSION" license)
tar xzf "$JSQR_TARBALL"
test "$(node -p "require('./package/package.json').version")" = "$JSQR_VERSION"
mkdir -p "$JSQR_DEST"
cp package/dist/jsQR.js "$JSQR_DEST/jsQR.js"
cp package/LICENSE "$JSQR_DEST/LICENSE"
cat > "$JSQR_DEST/VENDOR.txt" <<VENDOR_TEXT
name: $JSQR
version: $JSQR_VERSION
licence: $JSQR_LICENSE (see LICENSE, the package's own)
source: https://www.npmjs.com/package/$JSQR ($JSQR_TARBALL, dist/jsQR.js, unmodified)
integrity: $JSQR_INTEGRITY
sha256 of jsQR.js: $(sha256sum "$JSQR_DEST/jsQR.js" | cut -d' ' -f1)
upstream: https://github.com/cozmo/jsQR
refreshed by: codeservice/web/static/vendor/refresh.sh <qrcode-generator version> $JSQR_VERSION
VENDOR_TEXT
echo "vendored $JSQR $JSQR_VERSION into $JSQR_DEST"
