#!/usr/bin/env bash
# Install what the browser tests of `meshc render` need, only when it is missing:
#   - Debian's chromium (headless: runs Mermaid and screenshots the HTML report);
#   - the mermaid npm package, pinned, into a cache folder kept out of git.
# Idempotent: a second run does nothing (no network) when both are present.
# Environment: MESHC_RENDER_NODE_DIR overrides the cache folder.
set -euo pipefail

MERMAID_VERSION="12.3.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_dir="${MESHC_RENDER_NODE_DIR:-$root/.cache/render-node}"

if [ ! -x /usr/bin/chromium ]; then
    echo "install-render-deps: installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

mermaid_js="$node_dir/node_modules/mermaid/dist/mermaid.min.js"
installed=""
if [ -f "$node_dir/node_modules/mermaid/package.json" ]; then
    installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
        "$node_dir/node_modules/mermaid/package.json" | head -n 1)"
fi
if [ ! -f "$mermaid_js" ] || [ "$installed" != "$MERMAID_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-render-deps: installing nodejs and npm (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    echo "install-render-deps: installing mermaid@$MERMAID_VERSION into $node_dir"
    mkdir -p "$node_dir"
    printf '*\n' >"$node_dir/.gitignore"
    npm install --prefix "$node_dir" --no-audit --no-fund --no-save --loglevel=error \
        "mermaid@$MERMAID_VERSION" >/dev/null
fi

echo "install-render-deps: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), mermaid $MERMAID_VERSION at $mermaid_js"
