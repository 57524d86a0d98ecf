#!/usr/bin/env bash
# Sets the gateway up on a fresh clone (the counterpart of the Flask original's install_async_deps.sh):
# checks Node, installs the pinned dependencies, builds, and prepares .env without overwriting one.
set -euo pipefail
cd "$(dirname "$0")"

required="20.12.0"
if ! command -v node >/dev/null 2>&1; then
  echo "avatar-gateway needs Node.js ${required} or newer, and no 'node' was found on PATH." >&2
  exit 1
fi
current="$(node -p 'process.versions.node')"
if ! node -e "
  const [a, b] = ['${current}', '${required}'].map((v) => v.split('.').map(Number));
  process.exit(a[0] !== b[0] ? (a[0] > b[0] ? 0 : 1) : a[1] !== b[1] ? (a[1] > b[1] ? 0 : 1) : (a[2] >= b[2] ? 0 : 1));
"; then
  echo "avatar-gateway needs Node.js ${required} or newer; this is ${current}." >&2
  exit 1
fi

echo "==> installing dependencies (npm ci)"
npm ci --no-audit --no-fund

echo "==> building (tsc -> dist/)"
npm run build --silent

if [ ! -f .env ]; then
  secret="$(node -p 'require("crypto").randomBytes(32).toString("hex")')"
  sed "s/^JWT_SECRET_KEY=.*/JWT_SECRET_KEY=${secret}/" .env.example > .env
  echo "==> created .env from .env.example (a random JWT_SECRET_KEY: put the Flask app's secret there)"
else
  echo "==> keeping the existing .env"
fi

cat <<'NEXT'

Ready. Next:
  npm start     # the gateway on http://localhost:8203 (PORT in .env)
  npm test      # the test suite
NEXT
