#!/busybox/sh
# One-shot PKI for the local compose federation, run by the `pki` service (the image's toolbox
# stage). Idempotent: what exists is kept, so `docker compose up` again reuses the PKI.
#   /pki/ca/          the CA (its key never leaves this directory; only this service mounts it)
#   /pki/public/      ca.pem and crl.pem, for every party
#   /pki/<party>/     one party's certificate and key, mounted by that party alone
set -eu
FEDERATION="${FEDERATION:-esup.example}"
MEMBERS="${MEMBERS:-unistra rennes2 ulille}"
# The volume's mount point (tests/tests/federation/deploy.rs runs this script on a temporary directory).
PKI="${PKI:-/pki}"
CA="$PKI/ca"

[ -f "$CA/ca.pem" ] || fedmesh certs init --federation "$FEDERATION" --dir "$CA"

# issue <party dir> <file stem> <fedmesh certs issue arguments...>
issue() {
  party="$1"; stem="$2"; shift 2
  if [ ! -f "$PKI/$party/$stem.pem" ]; then
    fedmesh certs issue --dir "$CA" "$@"
    mkdir -p "$PKI/$party"
    mv "$CA/$stem.pem" "$CA/$stem.key" "$PKI/$party/"
  fi
}

issue coordinator coordinator --coordinator --dns coordinator --dns localhost
for member in $MEMBERS; do
  issue "$member" "$member-node" --member "$member" --role node --dns "$member" --dns localhost
  # The member's operator, for grpcurl and the fedmesh CLI from the host.
  issue "$member-admin" "$member-admin-ops" --member "$member" --role admin --name ops
done

mkdir -p "$PKI/public"
cp "$CA/ca.pem" "$CA/crl.pem" "$PKI/public/"
echo "PKI ready for $FEDERATION: coordinator and $MEMBERS"
