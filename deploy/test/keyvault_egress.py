"""Check the chart's Key Vault render (managed identity) against the default one.

usage: keyvault_egress.py KEYVAULT_RENDER DEFAULT_RENDER

The controller with unseal.keyVault.url must be able to resolve the vault's and Entra ID's names (DNS, 53) and,
with a managed identity, reach IMDS (169.254.169.254:80) through its NetworkPolicy, and must be started with the
identity flags; without a vault its egress stays the API server's ports alone.
"""

import sys

import yaml


def unseal(path, kind):
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc["kind"] == kind and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "unseal-controller":
            return doc
    sys.exit(f"{path}: no unseal-controller {kind}")


def egress(policy):
    """(protocol, port, cidr or None) for every egress port the policy opens."""
    out = set()
    for rule in policy["spec"].get("egress", []):
        cidrs = [peer["ipBlock"]["cidr"] for peer in rule.get("to", []) if "ipBlock" in peer] or [None]
        for port in rule.get("ports", []):
            for cidr in cidrs:
                out.add((port.get("protocol", "TCP"), port["port"], cidr))
    return out


failures = []
kv, default = sys.argv[1], sys.argv[2]
opened = egress(unseal(kv, "NetworkPolicy"))
for needed in [("UDP", 53, None), ("TCP", 53, None), ("TCP", 80, "169.254.169.254/32")]:
    if needed not in opened:
        failures.append(f"{kv}: the controller's NetworkPolicy does not open {needed[0]} {needed[1]} to {needed[2] or 'any'}")
if ("TCP", 80, None) in opened:
    failures.append(f"{kv}: port 80 is open to every address, not to IMDS alone")
base = egress(unseal(default, "NetworkPolicy"))
if any(port in (53, 80) for _, port, _ in base):
    failures.append(f"{default}: without a vault the controller's egress opens DNS or HTTP: {sorted(base, key=str)}")
args = unseal(kv, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
for flag in ["--key-vault-url=https://kv1.vault.azure.net/", "--key-vault-identity=managed-identity",
             "--key-vault-managed-identity-client-id=3c5a1f0e-8b1d-4f6a-9e2c-7d4b0a9f1e21"]:
    if flag not in args:
        failures.append(f"{kv}: the controller is not started with {flag}")
if failures:
    sys.exit("\n".join(failures))
print(f"Key Vault render: egress {sorted(opened, key=str)}; identity flags present; default egress {sorted(base, key=str)}")
