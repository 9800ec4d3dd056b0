"""Certificates from an ACME CA (RFC 8555) for the gateway, through certbot's `acme` package.

`plan` says which certificates the node wants and when each is due; `manager` is the loop that
keeps them (run by addons.acmeloop); `issue` obtains one, with `client` talking to the CA and the
challenges published through `tokens` (HTTP-01) or a provider of `dns` (DNS-01); `local` and
`shared` are where the results live, on this node and between nodes.
"""
