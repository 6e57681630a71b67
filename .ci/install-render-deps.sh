#!/usr/bin/env bash
# Install what the browser and document tests of `meshc render` need, only when missing:
#   - Debian's chromium (headless: runs Mermaid and screenshots the HTML report);
#   - the mermaid and @asyncapi/parser npm packages, pinned, into a cache folder kept
#     out of git (the parser validates `meshc render --format asyncapi`).
# Idempotent: a second run does nothing (no network) when everything is present.
# Both packages go in with one npm command: an `npm install --no-save` of one package
# removes the others it finds in the folder as extraneous.
# Environment: MESHC_RENDER_NODE_DIR overrides the cache folder.
set -euo pipefail

MERMAID_VERSION="12.3.0"
ASYNCAPI_PARSER_VERSION="3.6.6"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_dir="${MESHC_RENDER_NODE_DIR:-$root/.cache/render-node}"

if [ ! -x /usr/bin/chromium ]; then
    echo "install-render-deps: installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

# The version in node_modules/<package>/package.json, or nothing when it is absent.
installed_version() {
    local manifest="$node_dir/node_modules/$1/package.json"
    [ -f "$manifest" ] || return 0
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

mermaid_js="$node_dir/node_modules/mermaid/dist/mermaid.min.js"
if [ ! -f "$mermaid_js" ] \
    || [ "$(installed_version mermaid)" != "$MERMAID_VERSION" ] \
    || [ "$(installed_version @asyncapi/parser)" != "$ASYNCAPI_PARSER_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-render-deps: installing nodejs and npm (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    echo "install-render-deps: installing mermaid@$MERMAID_VERSION and" \
        "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION into $node_dir"
    mkdir -p "$node_dir"
    printf '*\n' >"$node_dir/.gitignore"
    npm install --prefix "$node_dir" --no-audit --no-fund --no-save --loglevel=error \
        "mermaid@$MERMAID_VERSION" "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" >/dev/null
fi

echo "install-render-deps: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')," \
    "mermaid $MERMAID_VERSION at $mermaid_js," \
    "@asyncapi/parser $ASYNCAPI_PARSER_VERSION in $node_dir/node_modules"
