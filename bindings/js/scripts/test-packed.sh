#!/usr/bin/env bash
# The package as a user gets it: `npm pack` (which builds first), the
# tarball installed into an empty project (CommonJS, as `npm init -y` makes
# it) and imported there the way the README says, then this package's test
# suite run against that installed copy, not the checkout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$here"
npm pack --silent --pack-destination "$work" >/dev/null
mkdir "$work/project"
cd "$work/project"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "$work"/ocirelay-*.tgz
# From CommonJS: the import() form (require fails on the top-level await).
node -e "
  import('ocirelay').then((m) => {
    if (m.parseRef('hello-world').repository !== 'library/hello-world') process.exit(1);
  });"
# The suite, as ES modules beside the installed package.
mkdir -p suite/async
cp "$here"/test/*.js suite/
cp "$here"/test/async/*.js suite/async/
echo '{"type": "module"}' > suite/package.json
export OCIRELAY_REGISTRY_CONFIG="$repo/scripts/registry.yml"
OCIRELAY_JCO="$here/node_modules/.bin/jco" \
OCIRELAY_BIN="${OCIRELAY_BIN:-$repo/target/debug/ocirelay}" \
  node --test suite/*.test.js
# The async API, on the Node with JSPI that scripts/setup installs.
"$repo/target/node24/bin/node" --experimental-wasm-jspi --test suite/async/*.test.js
