"""Python + OpenSSL peer for the seal benchmark: kubesealpy (PyPI) seals the same Secrets file.

Usage: python peer_kubesealpy.py CERT.pem SECRETS.yaml OUT.yaml
"""
import sys

import yaml
from kubesealpy import Sealer
from kubesealpy.models import Secret


def main() -> None:
    cert, secrets, out = sys.argv[1:4]
    sealer = Sealer.from_certificate_file(cert)
    with open(secrets) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    sealed = [sealer.seal_secret(Secret.model_validate(d)).model_dump(by_alias=True, exclude_none=True) for d in docs]
    with open(out, "w") as f:
        yaml.safe_dump_all(sealed, f)


if __name__ == "__main__":
    main()
