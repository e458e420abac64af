#!/usr/bin/env bash
# Validates what can be validated of deploy/ without a container engine:
# the compose file against the compose specification, the Kubernetes manifests
# against the API schemas (strict: unknown fields fail), the systemd unit, and
# every chatd configuration file in deploy/ against chatd's own config loader
# (unknown keys and refused combinations fail).
# Needs python3 (venv, pip) and a built chatd (CHATD_BIN, default target/debug/chatd).
set -euo pipefail
cd "$(dirname "$0")/.."
chatd="${CHATD_BIN:-target/debug/chatd}"
venv="${DEPLOY_CHECK_VENV:-target/deploy-check-venv}"
# A venv made elsewhere (a target folder moved or copied) has dead paths: make it anew.
if [ -d "$venv" ] && ! "$venv/bin/check-jsonschema" --version >/dev/null 2>&1; then
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema==0.33.* kubernetes-validate==1.37.* pyyaml
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
"$venv/bin/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml
if command -v systemd-analyze >/dev/null; then
  # `verify` wants the binary to exist; point it at the built one.
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  sed "s#/usr/local/bin/chatd#$(realpath "$chatd")#" deploy/chatd.service >"$tmp/chatd.service"
  SYSTEMD_LOG_LEVEL=err systemd-analyze verify --man=no "$tmp/chatd.service"
fi
# Every config in deploy/ must load (the k8s one is inside its ConfigMap).
tmp2=$(mktemp -d)
"$venv/bin/python" - "$tmp2" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
open(sys.argv[1] + "/k8s-chatd.toml", "w").write(doc["data"]["chatd.toml"])
PY
# The cluster's secret comes from the environment (a Kubernetes or compose secret).
for f in deploy/chatd.example.toml deploy/chatd-cluster.toml "$tmp2/k8s-chatd.toml"; do
  env -u CHAT_CONFIG CHAT_CLUSTER__SECRET="$(printf 's%.0s' $(seq 32))" "$chatd" --config "$f" config >/dev/null \
    || { echo "deploy config $f does not load" >&2; exit 1; }
done
rm -rf "$tmp2"
# The Grafana dashboard is JSON and queries only metrics chatd registers (the
# names in server/src/metrics/; the test `metrics` checks them against a scrape).
python3 - <<'PY'
import json, re, sys
text = open("deploy/grafana/chatd.json").read()
json.loads(text)
src = open("server/src/metrics/mod.rs").read()
known = set(re.findall(r'"(chatd_[a-z0-9_]+)"', src))
bad = sorted({n for n in re.findall(r"chatd_[a-z0-9_]+", text)
              if re.sub(r"_(bucket|count|sum)$", "", n) not in known})
if bad:
    sys.exit("deploy/grafana/chatd.json queries metrics chatd does not export: " + ", ".join(bad))
PY
# Redis in compose and k8s grants the chatd user the commands of the ACL line in CLUSTER.md (the one the tests use).
acl=$(grep '^user chatd on ' deploy/CLUSTER.md | sed 's/.*-@all //')
for f in deploy/compose.yaml deploy/k8s/redis.yaml; do
  grep -qF -- "-@all" "$f" && grep -qF -- "$acl" "$f" \
    || { echo "$f: the chatd user's Redis commands differ from the ACL line in deploy/CLUSTER.md" >&2; exit 1; }
done
echo "deploy/: compose, Kubernetes manifests, systemd unit, configs, Redis ACL and Grafana dashboard valid"
